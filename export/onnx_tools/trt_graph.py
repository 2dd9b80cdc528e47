"""The engine build's graph steps, ONNX -> ONNX and checkable on ONNX Runtime CPU (no TensorRT).

In order:

1. deformable convolutions, by ``--deform``: ``plugin`` rewrites ``DeformConv`` nodes to
   ``VqaDeformConv2d`` nodes for vqa-rt's plugin; ``decomposed`` rewrites them into standard ops
   (:mod:`vqa_rt.export.onnx_tools.deform_decompose`) that every TensorRT flavour builds natively;
   ``builtin`` leaves them to full TensorRT's own ``ModulatedDeformConv2d``.
2. precision: ``fp16`` converts the graph to FP16 (inputs and outputs stay FP32; a decomposed
   DeformConv's sampling coordinates stay FP32); ``int8``/``fp8`` require explicit
   QuantizeLinear/DequantizeLinear nodes of that type (from ``vqa-rt quantize``) and refuse a graph
   without them. Networks are strongly typed on every TensorRT release and flavour, so the graph
   alone decides precision: what runs is exactly what ONNX Runtime can check on the CPU.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import asdict, dataclass, field

from onnx import ModelProto, TensorProto, helper, numpy_helper

from vqa_rt.errors import EngineBuildError, ModelError
from vqa_rt.export.onnx_tools.deform_decompose import decompose_deform_conv
from vqa_rt.runtime.engines.native.libraries import (
    BUILTIN_DEFORM_PLUGIN,
    PLUGIN_NAMESPACE,
    PLUGIN_OP,
    PLUGIN_VERSION,
    VQA_PLUGIN,
)
from vqa_rt.runtime.engines.onnx_graph import count_deform_conv, graph_nodes, graphs, is_deform_conv

PRECISIONS = ("fp32", "fp16", "int8", "fp8")
PLUGIN_DOMAIN = "vqa_rt"  # any domain reaches TensorRT's plugin registry; this one says whose op it is
_DEFORM_INPUTS = 5  # X, W, offset, B, mask
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# The quantized element type each precision needs, and the types TensorRT cannot take.
_QDQ_TYPES = {"int8": "INT8", "fp8": "FLOAT8E4M3FN"}
_UNSUPPORTED_QDQ = {"UINT8": "asymmetric UINT8 (TensorRT takes signed INT8 with zero point 0)",
                    "FLOAT8E5M2": "FP8 E5M2 (TensorRT takes E4M3FN)"}
_INTEGER_TYPES = {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32}
FP8_MIN_CAPABILITY = (8, 9)  # Ada and newer
DEFORM_MODES = ("plugin", "decomposed", "builtin")


def rewrite_deform_conv(model: ModelProto) -> tuple[ModelProto, int]:
    """A copy of ``model`` whose ``DeformConv`` nodes are ``VqaDeformConv2d`` plugin nodes; and their count.

    Inputs and attributes are kept; ``plugin_namespace`` and ``plugin_version`` are added
    (what TensorRT's parser uses to find the creator). Absent optional inputs (empty
    names) are dropped: the plugin tells a lone fourth input apart by its rank (1-D
    bias, 4-D mask), see kernels/plugin/README.md.
    """
    model = copy.deepcopy(model)
    count = 0
    for node in graph_nodes(model):
        if not is_deform_conv(node):
            continue
        inputs = list(node.input)
        if len(inputs) < 3 or len(inputs) > _DEFORM_INPUTS or not all(inputs[:3]):
            raise ModelError(f"DeformConv node {node.name!r} has inputs {inputs}; expected X, W, offset[, B[, mask]]")
        node.ClearField("input")
        node.input.extend(name for name in inputs if name)
        kept = [a for a in node.attribute if a.name not in ("plugin_namespace", "plugin_version")]
        node.ClearField("attribute")
        node.attribute.extend(kept)
        node.attribute.extend([helper.make_attribute("plugin_namespace", PLUGIN_NAMESPACE),
                               helper.make_attribute("plugin_version", PLUGIN_VERSION)])
        node.op_type, node.domain = PLUGIN_OP, PLUGIN_DOMAIN
        count += 1
    if count and not any(o.domain == PLUGIN_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(PLUGIN_DOMAIN, 1))
    return model, count


def convert_to_fp16(model: ModelProto, keep_fp32: list[str] | None = None) -> ModelProto:
    """The graph in FP16 with FP32 inputs and outputs (ONNX Runtime's converter, with its default
    block list of ops and the nodes named in ``keep_fp32`` kept in FP32); the result still runs on
    ONNX Runtime CPU. Between two kept nodes the converter rounds through FP16 (a Cast to FP16, then
    back to FP32); those pairs are removed, so a chain of kept nodes stays FP32 throughout."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    if any(node.op_type in QDQ_OPS for node in graph_nodes(model)):
        raise ModelError("the graph has QuantizeLinear/DequantizeLinear nodes: build it with --precision int8 or "
                         "fp8, not fp16")
    half = convert_float_to_float16(copy.deepcopy(model), keep_io_types=True, node_block_list=keep_fp32 or None)
    if keep_fp32:
        _drop_fp16_round_trips(half, set(keep_fp32))
    return half


def _cast_to(node, dtype: int) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == dtype for a in node.attribute)


def _drop_fp16_round_trips(model: ModelProto, kept: set[str]) -> None:
    """Remove each Cast(FP16) -> Cast(FP32) pair whose first Cast reads an output of a node in ``kept`` (an FP32
    tensor): the second Cast's readers read that tensor instead, and first Casts left unread go."""
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    outputs = {output.name for output in graph.output}

    def rounds_kept_output(node) -> bool:  # a Cast to FP16 of a kept node's output
        source = producer.get(node.input[0]) if node.input else None
        return _cast_to(node, TensorProto.FLOAT16) and source is not None and source.name in kept

    rename = {}
    for node in graph.node:
        source = producer.get(node.input[0]) if node.input else None
        if _cast_to(node, TensorProto.FLOAT) and node.output[0] not in outputs and source is not None \
                and rounds_kept_output(source):
            rename[node.output[0]] = source.input[0]
    if not rename:
        return
    remaining = [node for node in graph.node if node.output[0] not in rename]
    for node in remaining:
        node.input[:] = [rename.get(name, name) for name in node.input]
    read = {name for node in remaining for name in node.input} | outputs
    remaining = [node for node in remaining if node.output[0] in read or not rounds_kept_output(node)]
    del graph.node[:]
    graph.node.extend(remaining)


def _constants(model: ModelProto) -> dict[str, TensorProto]:
    """Initializers and Constant-node tensors by name (where zero points and quantized weights live)."""
    tensors = {}
    for graph in graphs(model):
        tensors.update({t.name: t for t in graph.initializer})
        for node in graph.node:
            if node.op_type == "Constant":
                for attribute in node.attribute:
                    if attribute.name == "value" and node.output:
                        tensors[node.output[0]] = attribute.t
    return tensors


@dataclass(frozen=True)
class QuantizationSummary:
    """The explicit quantization in a graph: Q/DQ node counts, quantized element types, offenders."""

    quantize: int = 0
    dequantize: int = 0
    types: dict[str, int] = field(default_factory=dict)
    nonzero_zero_points: list[str] = field(default_factory=list)

    @property
    def nodes(self) -> int:
        return self.quantize + self.dequantize


def summarize_quantization(model: ModelProto) -> QuantizationSummary:
    """Count Q/DQ nodes and the quantized type each uses (zero point's type, ``output_dtype``, a quantized
    weight's type; ONNX's default UINT8 for a QuantizeLinear with neither)."""
    tensors = _constants(model)
    counts: Counter[str] = Counter()
    types: Counter[str] = Counter()
    nonzero = []
    for node in graph_nodes(model):
        if node.op_type not in QDQ_OPS:
            continue
        counts[node.op_type] += 1
        zero_point = tensors.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        dtype = None
        if zero_point is not None:
            dtype = zero_point.data_type
            if dtype in _INTEGER_TYPES and numpy_helper.to_array(zero_point).any():
                nonzero.append(node.name or node.output[0])
        elif node.op_type == "DequantizeLinear" and node.input[0] in tensors:
            dtype = tensors[node.input[0]].data_type
        elif node.op_type == "QuantizeLinear":
            dtype = next((a.i for a in node.attribute if a.name == "output_dtype" and a.i), TensorProto.UINT8)
        if dtype is not None:
            types[TensorProto.DataType.Name(dtype)] += 1
    return QuantizationSummary(counts["QuantizeLinear"], counts["DequantizeLinear"], dict(types), nonzero)


def check_quantized(model: ModelProto, precision: str) -> QuantizationSummary:
    """Refuse an int8/fp8 build of a graph without explicit Q/DQ of that type (TensorRT 11 has no calibrator)."""
    summary = summarize_quantization(model)
    wanted = _QDQ_TYPES[precision]
    if summary.nodes == 0:
        raise ModelError(f"--precision {precision} needs an explicitly quantized graph (QuantizeLinear/"
                         "DequantizeLinear nodes) and this one has none: quantize it first with 'vqa-rt quantize' "
                         "(TensorRT takes precision from the graph; it does not calibrate)")
    bad = [text for name, text in _UNSUPPORTED_QDQ.items() if name in summary.types]
    if bad:
        raise ModelError(f"the graph's Q/DQ nodes use {', '.join(bad)}, which TensorRT does not support")
    if wanted not in summary.types:
        found = ", ".join(f"{n} {t}" for t, n in sorted(summary.types.items())) or "none of a known type"
        raise ModelError(f"--precision {precision} needs {wanted} Q/DQ nodes; the graph's are: {found}")
    if summary.nonzero_zero_points:
        names = ", ".join(summary.nonzero_zero_points[:3]) + (" ..." if len(summary.nonzero_zero_points) > 3 else "")
        raise ModelError(f"TensorRT supports symmetric quantization only (zero point 0); these Q/DQ nodes have "
                         f"others: {names}")
    return summary


@dataclass
class PreparedGraph:
    """The graph handed to TensorRT and what was done to it."""

    model: ModelProto
    precision: str
    deform: str | None = None  # how DeformConv nodes were handled (one of DEFORM_MODES); None: the graph has none
    fp16_converted: bool = False
    deform_conv: int = 0  # DeformConv nodes in the source graph
    quantization: QuantizationSummary | None = None

    def plugins(self) -> list[dict[str, str]]:
        """The plugins an engine built from this graph needs at run time."""
        spec = {"plugin": VQA_PLUGIN, "builtin": BUILTIN_DEFORM_PLUGIN}.get(self.deform or "")
        return [asdict(spec)] if spec else []

    def describe(self) -> str:
        steps = []
        if self.deform == "plugin":
            steps.append(f"{self.deform_conv} DeformConv -> {PLUGIN_OP} (vqa-rt plugin)")
        elif self.deform == "decomposed":
            steps.append(f"{self.deform_conv} DeformConv decomposed into GridSample + MatMul (standard ops)")
        elif self.deform == "builtin":
            steps.append(f"{self.deform_conv} DeformConv left to TensorRT's {BUILTIN_DEFORM_PLUGIN.name}")
        if self.fp16_converted:
            steps.append("converted to FP16 (inputs and outputs FP32)")
        if self.quantization is not None:
            q = self.quantization
            steps.append(f"{q.nodes} Q/DQ nodes ({', '.join(f'{n} {t}' for t, n in sorted(q.types.items()))})")
        return "; ".join(steps) or "unchanged"


def prepare_graph(model: ModelProto, precision: str, deform: str = "plugin") -> PreparedGraph:
    """The DeformConv step and the precision step (see the module docstring); ``deform`` is one of
    :data:`DEFORM_MODES` and matters only for a graph with DeformConv nodes."""
    if precision not in PRECISIONS:
        raise EngineBuildError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if deform not in DEFORM_MODES:
        raise EngineBuildError(f"unknown DeformConv handling {deform!r}; choose from {', '.join(DEFORM_MODES)}")
    count = count_deform_conv(model)
    prepared = PreparedGraph(model, precision, deform if count else None, deform_conv=count)
    keep_fp32: list[str] = []
    if prepared.deform == "decomposed":
        decomposed = decompose_deform_conv(model)
        prepared.model, keep_fp32 = decomposed.model, list(decomposed.fp32_nodes)
    if precision == "fp16":
        prepared.model, prepared.fp16_converted = convert_to_fp16(prepared.model, keep_fp32), True
    elif precision in _QDQ_TYPES:
        prepared.quantization = check_quantized(prepared.model, precision)
    if prepared.deform == "plugin":
        prepared.model, _ = rewrite_deform_conv(prepared.model)
    return prepared
