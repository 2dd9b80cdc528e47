"""PyTorch -> ONNX: dynamic axes, embedded metadata, validation against PyTorch."""

from __future__ import annotations

import json

import torch

import vqa_rt
from vqa_rt.errors import ModelError
from vqa_rt.export.models.checkpoint import LoadedModel
from vqa_rt.export.models.deform_conv import ONNX_TRANSLATIONS
from vqa_rt.export.models.spec import ModelSpec
from vqa_rt.export.onnx_tools.files import save_onnx, write_model_files
from vqa_rt.export.quiet import quiet
from vqa_rt.export.to_onnx.validate import ValidationReport, validate_onnx

DEFAULT_OPSET = 22
EXPORT_BATCH = 2  # batch 2 so no axis silently becomes static


def build_metadata(spec: ModelSpec, loaded: LoadedModel) -> dict[str, str]:
    """The ``vqa_rt.*`` metadata entries embedded in the ONNX file (JSON-valued)."""
    values = {
        "kind": spec.kind,
        "description": spec.description,
        "inputs": list(spec.input_names),
        "outputs": list(spec.output_names),
        "dynamic_axes": {name: {str(k): v for k, v in axes.items()} for name, axes in spec.dynamic_axes.items()},
        "min_size": spec.min_size,
        "preprocess": spec.preprocess,
        "score_scale": spec.score_scale,
        "config": loaded.config.to_dict(),
        "untrained": loaded.untrained,
        "weights_source": loaded.source,
        "version": vqa_rt.__version__,
    }
    if spec.config_metadata is not None:
        values.update(spec.config_metadata(loaded.config))
    return {f"vqa_rt.{key}": json.dumps(value) for key, value in values.items()}


def dynamic_shapes(spec: ModelSpec) -> dict[str, dict[int, torch.export.Dim]]:
    dims: dict[str, torch.export.Dim] = {}
    for axes in spec.dynamic_axes.values():
        for axis, name in axes.items():
            minimum = 1 if axis == 0 else spec.min_size
            dims.setdefault(name, torch.export.Dim(name, min=minimum))
    return {name: {axis: dims[dim] for axis, dim in axes.items()} for name, axes in spec.dynamic_axes.items()}


def max_opset() -> int:
    """The highest ONNX opset the installed ``onnx`` knows (the exporter can target no later one)."""
    import onnx

    return onnx.defs.onnx_opset_version()


def check_opset(spec: ModelSpec, opset: object) -> int:
    """Raise :class:`ModelError` unless ``spec``'s model can be exported at ``opset``: from its
    :attr:`~ModelSpec.min_opset` to :func:`max_opset` (the exporter would otherwise fall back to another opset)."""
    high = max_opset()
    if isinstance(opset, bool) or not isinstance(opset, int) or not spec.min_opset <= opset <= high:
        why = f" ({spec.min_opset_reason})" if spec.min_opset_reason else ""
        raise ModelError(f"--opset {opset!r}: the {spec.kind} model exports at opsets {spec.min_opset}..{high}{why}")
    return opset


def export_onnx(
    spec: ModelSpec,
    loaded: LoadedModel,
    output: str,
    *,
    opset: int = DEFAULT_OPSET,
    validate: bool = True,
    seed: int = 1234,
) -> ValidationReport | None:
    """Export ``loaded.model`` to ``output`` and, by default, validate it against PyTorch.

    The file is written next to ``output`` and moved into place only once it is
    complete; a failed validation leaves the file for inspection and raises.
    """
    check_opset(spec, opset)
    _, height, width = spec.validation_cases(loaded.config)[0]
    example = spec.example_inputs(loaded.config, EXPORT_BATCH, height, width)
    with quiet("torch.onnx", "torch.export", "torch._dynamo"), torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(
            loaded.model,
            example,
            input_names=list(spec.input_names),
            output_names=list(spec.output_names),
            dynamic_shapes=dynamic_shapes(spec),
            custom_translation_table=ONNX_TRANSLATIONS,
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    model_proto = program.model_proto
    for key, value in build_metadata(spec, loaded).items():
        model_proto.metadata_props.add(key=key, value=value)
    model_proto.producer_name, model_proto.producer_version = "vqa-rt", vqa_rt.__version__
    write_model_files(output, lambda path: save_onnx(model_proto, path))
    if not validate:
        return None
    return validate_onnx(spec, loaded, output, seed=seed)
