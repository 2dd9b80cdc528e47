"""ONNX -> quantized ONNX, calibrated on video frames, with a fidelity report.

Modes:

- ``int8``: explicit Q/DQ (``QuantizeLinear``/``DequantizeLinear``) on the inputs of the
  layers each model kind quantizes (NR: the linear layers and convolutions that
  :func:`quantized_nodes` picks; FR: the convolutions of its feature trunk but its first
  stage's, :func:`int8_trunk_convs`): symmetric signed int8 (zero point 0), weights per
  output channel, biases float, activation ranges from the calibration frames (NR: the
  99.99th percentile of |values|; FR: their largest |value|). That is what TensorRT (11 and
  later: precision comes from the graph) builds int8 kernels from; ONNX Runtime's CPU provider
  runs it with int8 kernels too (see ``runtime/engines/backends/unsigned_qdq.py``).
- ``fp8``: the same Q/DQ placement with FLOAT8E4M3FN, per-tensor scales (Distribution
  calibration), for GPUs with FP8 tensor cores. ONNX Runtime's CPU provider runs it from
  1.32 (slower than the float model here); where it cannot, the graph is written and the report says so.
- ``int8-weight-only`` / ``int4-weight-only``: ONNX Runtime's ``MatMulNBits`` (weights
  in blocks of 32 with a scale each, symmetric, int8 arithmetic on the activations:
  accuracy level 4); no calibration. An ONNX Runtime contrib op: files 4x / 8x smaller
  in their linear weights, for ONNX Runtime, not for TensorRT.

Q/DQ graphs are written at opset 20 (see :data:`QDQ_OPSET`). The quantized file keeps
the source's ``vqa_rt.*`` metadata and adds ``vqa_rt.quantization`` (mode, calibration,
fidelity report), so it scores like the source (``vqa-rt score --engine model.q.onnx``).

Calibration and evaluation frames: an NR model's come from one video each; an FR model's from
the frame pairs of a manifest's rows (as ``score-batch`` reads them), and its report adds the
agreement of the clips' mean scores, one clip per row.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable

import onnx

from vqa_rt.errors import InputError, ModelError
from vqa_rt.export.onnx_tools.calibration_sets import Feed, input_set
from vqa_rt.export.onnx_tools.fidelity import FidelityReport, compare_models
from vqa_rt.export.onnx_tools.files import EXTERNAL_DATA_ABOVE, external_data, save_onnx
from vqa_rt.export.onnx_tools.quantize_modes import (
    MAX_CALIBRATION_FRAMES,
    MIN_CALIBRATION_FRAMES,
    MODES,
    WEIGHT_BLOCK,
    WEIGHT_ONLY_ACCURACY_LEVEL,
)
from vqa_rt.export.quiet import quiet
from vqa_rt.runtime.engines.backends.onnxrt import import_onnxruntime
from vqa_rt.runtime.engines.onnx_graph import consumers
from vqa_rt.runtime.engines.record import resolve_engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.sources import VideoInput, check_stdin
from vqa_rt.runtime.outputs import check_output_paths
from vqa_rt.runtime.pipeline.manifest import Manifest

QUANTIZABLE_KINDS = ("nr", "fr")
# Q/DQ graphs are written at opset 20: ONNX Runtime (up to 1.31 at least) fails to load int8 graphs
# with QuantizeLinear-21 once its QDQ optimisers run (onnxruntime issue 25526).
QDQ_OPSET = 20
CALIBRATION_PERCENTILE = 99.99  # NR int8 activation ranges clip the rarest 0.01 % of |values|


class _Feeds:
    """ONNX Runtime's calibration reader interface over input feeds, one per call."""

    def __init__(self, feeds: list[Feed]):
        self.feeds, self.position = feeds, 0

    def get_next(self) -> Feed | None:
        if self.position == len(self.feeds):
            return None
        self.position += 1
        return self.feeds[self.position - 1]

    def rewind(self) -> None:
        self.position = 0


def _at_qdq_opset(source: str) -> onnx.ModelProto:
    """The model at :data:`QDQ_OPSET` or below, with shapes inferred afresh."""
    from onnx import version_converter

    model = onnx.load(source)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset > QDQ_OPSET:
        try:
            model = version_converter.convert_version(model, QDQ_OPSET)
        except Exception as exc:  # the converter raises for ops it cannot adapt
            raise ModelError(f"{source}: cannot convert opset {opset} to {QDQ_OPSET} for Q/DQ quantization "
                             f"({str(exc).splitlines()[0]}); export with --opset {QDQ_OPSET}") from None
    del model.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def quantized_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes whose inputs get Q/DQ: convolutions and linear layers (``MatMul``/``Gemm`` with
    a constant weight), except those that

    - read the model's input (the patch embedding of raw pixels, the first layer),
    - see a single row (the NR model's last position: its last decoder layer and the level
      head), which cost next to nothing and feed the score directly,
    - read the product of two other linear layers' outputs (a gated MLP's down projection,
      whose heavy-tailed input is what per-tensor int8 scales handle worst),
    - form the projector: the layer whose output (plus its bias) joins constant rows (the text
      embeddings, OneVision's newline, mPLUG-Owl2's end-of-image token) in a ``Concat``, and the
      layers it is computed from; its error reaches every image token the decoder reads (about
      1 % of the work; float, it took the NR ``small`` model's worst-frame
      |Δscore| from 0.063 to 0.038 on 120 evaluation frames).

    Activation-by-activation products (attention) stay float too.
    """
    graph = model.graph
    constants = {tensor.name for tensor in graph.initializer}
    inputs = {value.name for value in graph.input}
    producers = {name: node for node in graph.node for name in node.output}
    shapes = {v.name: v.type.tensor_type.shape.dim for v in (*graph.value_info, *graph.input)}

    def linear(node) -> bool:
        return node.op_type in ("MatMul", "Gemm", "Conv") and len(node.input) > 1 and node.input[1] in constants

    def single_row(name: str) -> bool:
        dims = shapes.get(name)
        return dims is not None and (len(dims) < 3 or (dims[-2].HasField("dim_value") and dims[-2].dim_value == 1))

    def sources(name: str, depth: int = 6) -> frozenset[str]:
        """The linear layers a tensor is computed from, looking back a few elementwise steps."""
        node = producers.get(name)
        if node is None or depth == 0:
            return frozenset()
        if linear(node):
            return frozenset([node.name])
        return frozenset().union(*(sources(i, depth - 1) for i in node.input if i not in constants))

    def gated(name: str) -> bool:
        node = producers.get(name)
        if node is None or node.op_type != "Mul" or any(i in constants for i in node.input):
            return False
        first, second = (sources(i) for i in node.input)
        return bool(first) and bool(second) and first.isdisjoint(second)

    def projector_output(name: str) -> str | None:
        """The linear layer computing ``name``, directly or through a reshape and a bias ``Add``."""
        node = producers.get(name)
        if node is not None and node.op_type in ("Reshape", "Flatten"):
            node = producers.get(node.input[0])
        if node is not None and node.op_type == "Add" and node.input[1] in constants:
            node = producers.get(node.input[0])
        return node.name if node is not None and linear(node) else None

    def constant(name: str, depth: int = 6) -> bool:
        """Whether a tensor's values come from constants alone (the prompt's rows, a learned token), expanded
        to shapes the input may decide."""
        node = producers.get(name)
        if node is None:
            return name in constants
        return node.op_type == "Shape" or (depth > 0 and all(constant(i, depth - 1) for i in node.input if i))

    nodes = {node.name: node for node in graph.node}
    joins = [node for node in graph.node if node.op_type == "Concat" and any(constant(i) for i in node.input)]
    projector = {layer for node in joins for layer in map(projector_output, node.input) if layer is not None}
    projector |= frozenset().union(*(sources(nodes[layer].input[0]) for layer in projector))
    return [node.name for node in graph.node
            if linear(node) and node.input[0] not in inputs and node.name not in projector
            and not (node.op_type != "Conv" and single_row(node.input[0])) and not gated(node.input[0])]


def trunk_convs(model: onnx.ModelProto) -> list[str]:
    """Names of the FR model's convolutions that see reference and distorted frames stacked in one batch: its
    feature trunk, from the ``Concat`` of the two inputs on the batch axis to the ``Slice`` that splits them.

    The rest stays float: the fusion's offset predictors (an offset error moves where the deformable
    convolution samples), the deformable convolutions, the temporal branch and the heads.
    """
    graph = model.graph
    inputs = {value.name for value in graph.input}
    batched = [node for node in graph.node if node.op_type == "Concat" and len(node.input) == 2
               and set(node.input) <= inputs and any(a.name == "axis" and a.i == 0 for a in node.attribute)]
    if len(batched) != 1:
        raise ModelError("the FR graph has no single Concat of two inputs on the batch axis (its feature trunk); "
                         "export it with 'vqa-rt export fr'")
    readers = consumers(graph)
    trunk, frontier = set(), list(batched[0].output)
    while frontier:
        for node in readers.get(frontier.pop(), []):
            if node.name not in trunk and node.op_type not in ("Slice", "Split", "Gather"):
                trunk.add(node.name)
                frontier += node.output
    return [node.name for node in graph.node if node.name in trunk and node.op_type == "Conv"]


def int8_trunk_convs(model: onnx.ModelProto) -> list[str]:
    """The trunk convolutions the FR int8 recipe quantizes: all but the first stage's (ResNet's ``layer1``: the
    stride-1 convolutions between the stem and the next strided one, at a quarter of the frame's size).

    Rounding that stage's inputs reads as distortion: with it in int8, a calibration set unlike the scored
    content lowered the least distorted clips' scores by up to 0.07 DCR (``benchmarks/results/fr_quantization.md``).
    """
    trunk = trunk_convs(model)
    members = set(trunk)
    convs = {node.name: node for node in model.graph.node if node.name in members}

    def strided(name: str) -> bool:
        return any(a.name == "strides" and max(a.ints) > 1 for a in convs[name].attribute)

    if len(trunk) < 2 or not strided(trunk[0]):
        raise ModelError("the FR trunk does not start with a strided stem convolution")
    first_stage = set()
    for name in trunk[1:]:
        if strided(name):
            break
        first_stage.add(name)
    return [name for name in trunk if name not in first_stage]


@dataclass(frozen=True)
class Recipe:
    """How a model kind is quantized with Q/DQ."""

    nodes: Callable[[onnx.ModelProto], list[str]]  # the nodes whose inputs get Q/DQ
    int8_calibration: str  # ONNX Runtime's CalibrationMethod for int8 activation ranges
    quantize_outputs: bool  # Q/DQ on those nodes' outputs too (ONNX Runtime's CPU provider then fuses int8 kernels)


RECIPES = {
    "nr": Recipe(quantized_nodes, "Percentile", quantize_outputs=False),
    # FR (benchmarks/results/fr_quantization.md, the trained model on held-out clips): the trunk but its first
    # stage, as quantizing that stage too moved the worst clip by 0.07 DCR when calibrated on unlike content;
    # min-max ranges, as the 99.99th percentile moved it more; Q/DQ on the convolutions' inputs only (TensorRT's
    # placement), as Q/DQ on their outputs too moved it more (though ONNX Runtime then fuses int8 convolutions:
    # no faster than float on the CPUs measured).
    "fr": Recipe(int8_trunk_convs, "MinMax", quantize_outputs=False),
}


def calibration_method(mode: str, kind: str) -> str | None:
    """The name of ONNX Runtime's calibration method for ``mode`` on a model of ``kind`` (None: not calibrated)."""
    if not MODES[mode].calibrated:
        return None
    return "Distribution" if mode == "fp8" else RECIPES[kind].int8_calibration


def _static(source: str, output: str, mode: str, kind: str, feeds: list[Feed], large: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    fp8, recipe = mode == "fp8", RECIPES[kind]
    qtype = QuantType.QFLOAT8E4M3FN if fp8 else QuantType.QInt8
    model = _at_qdq_opset(source)
    excluded = [] if recipe.quantize_outputs else ["MatMul", "Gemm", "Conv"]
    quantize_static(
        model, output, _Feeds(feeds), quant_format=QuantFormat.QDQ, nodes_to_quantize=recipe.nodes(model),
        op_types_to_quantize=["MatMul", "Gemm", "Conv"],
        per_channel=not fp8, activation_type=qtype, weight_type=qtype, use_external_data_format=large,
        calibrate_method=getattr(CalibrationMethod, calibration_method(mode, kind)),
        # biases stay float: TensorRT's ONNX parser rejects an int32 DequantizeLinear (ONNX Runtime fuses either)
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "CalibTensorRangeSymmetric": True,
                       "QuantizeBias": False,
                       "CalibPercentile": CALIBRATION_PERCENTILE, "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
                       "OpTypesToExcludeOutputQuantization": excluded},
    )


def _weight_only(source: str, output: str, bits: int, large: bool) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(source), bits=bits, block_size=WEIGHT_BLOCK, is_symmetric=True,
                                     accuracy_level=WEIGHT_ONLY_ACCURACY_LEVEL)
    quantizer.process()
    quantizer.model.save_model_to_file(output, use_external_data_format=large)


def quantize_onnx(source: str, output: str, mode: str, calibration: list[Feed] | None, kind: str = "nr") -> None:
    """Write ``source``, a model of ``kind``, quantized in ``mode`` to ``output`` (calibrated on the input feeds
    ``calibration`` where the mode needs them)."""
    ort = import_onnxruntime()
    large = os.path.getsize(source) > EXTERNAL_DATA_ABOVE or os.path.exists(external_data(source))
    ort.set_default_logger_severity(3)  # calibration sessions warn about unused initializers
    try:
        with quiet("", "onnxruntime.quantization.matmul_nbits_quantizer"):
            if MODES[mode].calibrated:
                _static(source, output, mode, kind, calibration, large)
            else:
                _weight_only(source, output, 8 if mode == "int8-weight-only" else 4, large)
    finally:
        ort.set_default_logger_severity(2)


def _finish(quantized: str, source: str, output: str, record: dict[str, Any]) -> None:
    """Copy the source's vqa-rt metadata and the quantization record into ``quantized``, saved as ``output``."""
    model = onnx.load(quantized)
    source_meta = {p.key: p.value for p in onnx.load(source, load_external_data=False).metadata_props}
    del model.metadata_props[:]
    for key, value in {**source_meta, "vqa_rt.quantization": json.dumps(record)}.items():
        model.metadata_props.add(key=key, value=value)
    save_onnx(model, output)


def _check_size(path: str, role: str, count: int | None, min_frames: int) -> None:
    if count is not None and count < min_frames:
        raise InputError(f"{path}: {role} set too small: {count} frames selected, need at least {min_frames} (use "
                         "more or longer videos or sample more frames: --sample-fps, --sample-frames, --frame-stride)")


def quantize_model(model: str, output: str, mode: str, calibration: VideoInput | Manifest,
                   options: FrameOptions = FrameOptions(), *, evaluation: VideoInput | Manifest | None = None,
                   threads: int = 0, calibration_frames: int = MAX_CALIBRATION_FRAMES,
                   min_frames: int = MIN_CALIBRATION_FRAMES) -> FidelityReport:
    """Quantize the exported model ``model`` to ``output`` and compare the two on ONNX Runtime CPU.

    ``calibration`` (and ``evaluation``, default: the calibration frames) are, for an NR model, videos
    and, for an FR model, manifests of (reference, distorted) rows; ``options`` select their frames
    (the engine's default sampling unless given); at least ``min_frames`` each, of which at most
    ``calibration_frames``, spread evenly, calibrate. Everything is checked
    before anything is written. Returns the fidelity report, which is also stored in the output's
    metadata.
    """
    if mode not in MODES:
        raise InputError(f"unknown quantization mode {mode!r} (known: {', '.join(MODES)})")
    engine = resolve_engine(model, QUANTIZABLE_KINDS)
    if engine.kind == "fr" and not MODES[mode].calibrated:
        raise InputError(f"{model}: {mode} quantizes MatMul weights, which an FR model has none of; use --mode int8")
    if "quantization" in engine.model.metadata:
        raise InputError(f"{model}: is already quantized ({engine.model.metadata['quantization']['mode']})")
    given = {"calibration": calibration, **({"evaluation": evaluation} if evaluation is not None else {})}
    check_stdin({role: video for role, video in given.items() if isinstance(video, VideoInput)})
    sets = {role: input_set(engine, frames, options) for role, frames in given.items()}
    check_output_paths([output], [model, external_data(model), *(path for s in sets.values() for path in s.files())])
    if calibration_frames < min_frames:
        raise InputError(f"calibration frames {calibration_frames}: need at least {min_frames}")
    for role, frames in sets.items():
        _check_size(frames.path, role, frames.count, min_frames)
    feeds = sets["calibration"].feeds(calibration_frames) if MODES[mode].calibrated else None
    if feeds is not None:  # a video of unknown length may be shorter than it looked
        _check_size(sets["calibration"].path, "calibration", len(feeds), min_frames)
    partial = f"{output}.partial"
    try:
        quantize_onnx(model, partial, mode, feeds, engine.kind)
        report = compare_models(model, partial, sets.get("evaluation", sets["calibration"]).batches(options.batch_size),
                                threads=threads, batch_size=options.batch_size)
        calibrated = {"path": sets["calibration"].path, "selected": sets["calibration"].count,
                      "frames": None if feeds is None else len(feeds), "method": calibration_method(mode, engine.kind)}
        record = {"mode": mode, "description": MODES[mode].description, "target": MODES[mode].target,
                  "source": model, "calibration": calibrated,
                  "evaluation": "calibration frames" if evaluation is None else sets["evaluation"].path,
                  "fidelity": report.as_dict()}
        _finish(partial, model, output, record)
    finally:
        for leftover in (partial, external_data(partial)):
            if os.path.exists(leftover):
                os.remove(leftover)
    return report
