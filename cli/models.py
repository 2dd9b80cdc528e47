"""``vqa-rt init`` (a seeded untrained checkpoint) and ``vqa-rt export`` (a checkpoint to ONNX).

torch loads when these commands run, never at start-up.
"""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path

import typer

from vqa_rt.errors import ModelError


class ModelKind(str, Enum):
    fr = "fr"
    nr = "nr"
    qpmap = "qpmap"


CONFIG_HELP = ("Config preset (nr: tiny, tiny-onevision, tiny-mplug-owl2, small) or a JSON file of architecture "
               "hyper-parameters.")


def _load_config(spec, config: str | None):
    """A named preset of the model kind, or the config in a JSON file."""
    if config is None:
        return None
    if config in spec.presets or not (config.endswith(".json") or os.path.exists(config)):
        return spec.config_from_preset(config)
    try:
        values = json.loads(Path(config).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{config}: cannot read the config JSON ({exc})") from None
    return spec.config_from_dict(values)


def _load_model(kind: ModelKind, checkpoint: Path | None, random_init: int | None, config: str | None):
    from vqa_rt.export.models.checkpoint import load_checkpoint, load_shipped, random_init as seeded_model
    from vqa_rt.export.models.spec import get_spec

    if checkpoint is not None and random_init is not None:
        raise typer.BadParameter("give at most one of --checkpoint and --random-init")
    spec = get_spec(kind.value)
    model_config = _load_config(spec, config)
    if checkpoint is None and random_init is None:
        if config is not None:
            raise typer.BadParameter("--config applies to --checkpoint or --random-init, not the shipped weights")
        return spec, load_shipped(spec)
    if checkpoint is not None:
        return spec, load_checkpoint(spec, str(checkpoint), model_config)
    return spec, seeded_model(spec, random_init, model_config)


def _check_outputs(outputs: list[Path], checkpoint: Path | None, config: str | None) -> None:
    """The output gate before any work: no output may be the checkpoint (or a file of a checkpoint directory) or
    the config file."""
    from vqa_rt.runtime.outputs import check_output_paths

    sources = [checkpoint] if checkpoint is not None else []
    if checkpoint is not None and checkpoint.is_dir():
        sources = [path for path in checkpoint.iterdir() if path.is_file()]
    if config is not None and Path(config).is_file():
        sources.append(Path(config))
    check_output_paths([str(path) for path in outputs], [str(path) for path in sources])


def _export_streamed(kind: ModelKind, checkpoint: Path | None, config: str | None, output: Path, bits: int,
                     opset: int) -> None:
    from vqa_rt.export.models.nr_spec import plan_hf_checkpoint
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.to_onnx.streamed import export_streamed

    if kind is not ModelKind.nr or checkpoint is None or not checkpoint.is_dir():
        raise typer.BadParameter("--weight-only streams an nr checkpoint directory: give nr and --checkpoint DIR")
    spec = get_spec(kind.value)
    result = export_streamed(spec, plan_hf_checkpoint(str(checkpoint), _load_config(spec, config)), str(output),
                             bits, opset)
    typer.echo(f"wrote {output} (nr, weights: {checkpoint}, {result.summary()})")


def init(
    kind: ModelKind = typer.Argument(..., help="Model kind."),
    seed: int = typer.Option(0, help="Random seed of the weights."),
    output: Path = typer.Option(..., "--output", "-o", help="Checkpoint file to write (.pt)."),
    config: str | None = typer.Option(None, help=CONFIG_HELP),
):
    """Write a checkpoint with seeded random (UNTRAINED) weights, for demos and tests."""
    from vqa_rt.export.models.checkpoint import save_checkpoint

    _check_outputs([output], None, config)
    _, loaded = _load_model(kind, None, seed, config)
    save_checkpoint(loaded, str(output), kind.value)
    typer.echo(f"wrote {output} ({loaded.source}; untrained)")


def export(
    kind: ModelKind = typer.Argument(..., help="Model kind."),
    output: Path = typer.Option(..., "--output", "-o", help="ONNX file to write."),
    checkpoint: Path | None = typer.Option(
        None, help="state_dict (.pt) or .safetensors file to load (strict); for nr, a Hugging Face checkpoint "
        "directory (LLaVA-1.5, LLaVA-OneVision, mPLUG-Owl2). Default: the trained weights that ship with vqa-rt "
        "(fr, qpmap), else give this or --random-init."),
    random_init: int | None = typer.Option(None, help="Seed for UNTRAINED random weights instead of a checkpoint."),
    config: str | None = typer.Option(
        None, help=CONFIG_HELP + " With an nr checkpoint directory only its prompt, levels, weights, score range and "
        "frames (per prompt) apply."),
    opset: int = typer.Option(22, help="ONNX opset: 18 (fr: 19, for DeformConv) up to the newest the installed "
                              "onnx knows."),
    validate: bool = typer.Option(True, help="Validate the ONNX file against PyTorch after export."),
    weight_only: int | None = typer.Option(
        None, help="nr checkpoint directories: 4 or 8. Stream the weights one tensor at a time into a weight-only "
                   "quantized ONNX file (MatMulNBits), never holding the float model: for checkpoints too large "
                   "for memory (a 7B VLM). Not validated against PyTorch (no float model); checked to run."),
):
    """Export a model to ONNX with dynamic batch/height/width and embedded metadata, then validate it."""
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.onnx_tools.files import external_data
    from vqa_rt.export.to_onnx.onnx_export import check_opset, export_onnx

    check_opset(get_spec(kind.value), opset)  # before the model is built
    _check_outputs([output, Path(external_data(str(output)))], checkpoint, config)
    if weight_only is not None:
        _export_streamed(kind, checkpoint, config, output, weight_only, opset)
        return
    spec, loaded = _load_model(kind, checkpoint, random_init, config)
    report = export_onnx(spec, loaded, str(output), opset=opset, validate=validate)
    typer.echo(f"wrote {output} ({spec.kind}, weights: {loaded.source}{', UNTRAINED' if loaded.untrained else ''})")
    if report is not None:
        typer.echo(f"validated against PyTorch: {report.summary()}")
