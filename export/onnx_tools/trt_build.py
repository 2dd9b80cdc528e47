"""ONNX -> TensorRT plan: the graph steps (ONNX -> ONNX, testable on the CPU), the
optimisation profile, and the build itself (which needs TensorRT and a GPU).

Graph steps, in order:

1. precision: ``fp16`` converts the graph to FP16 (inputs and outputs stay FP32);
   ``int8``/``fp8`` require explicit QuantizeLinear/DequantizeLinear nodes of that
   type (from ``vqa-rt quantize``) and refuse a graph without them. The network is
   strongly typed on every TensorRT release, so the graph alone decides precision:
   what runs is exactly what ONNX Runtime can check on the CPU.
2. ``DeformConv`` nodes become ``VqaDeformConv2d`` nodes for vqa-rt's plugin, unless
   ``builtin_deformconv`` leaves them to TensorRT's own ``ModulatedDeformConv2d``.

The build writes the plan, a sidecar ``PLAN.json`` (the ONNX file's ``vqa_rt.*``
metadata, precision, profile, TensorRT version, GPU, plugins needed) that the
runtime reads, and a report ``PLAN.report.json`` (layers and their precisions).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import onnx
from onnx import ModelProto, TensorProto, helper, numpy_helper

import vqa_rt
from vqa_rt.errors import BackendUnavailableError, EngineBuildError, ModelError
from vqa_rt.runtime.engines.metadata import PLAN_FORMAT, PLAN_FORMAT_VERSION, onnx_metadata, plan_sidecar_path
from vqa_rt.runtime.engines.native.libraries import (
    BUILTIN_DEFORM_PLUGIN,
    PLUGIN_NAMESPACE,
    PLUGIN_OP,
    PLUGIN_VERSION,
    VQA_PLUGIN,
    register_builtin_plugins,
    register_plugin,
)
from vqa_rt.runtime.engines.onnx_graph import count_deform_conv, graph_nodes, graphs, is_deform_conv
from vqa_rt.runtime.engines.record import PLAN_SUFFIX, resolve_engine
from vqa_rt.runtime.outputs import check_output_paths, open_atomic, write_atomic

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


def report_path(plan: str) -> str:
    """The build report written beside a plan: ``fr.plan`` -> ``fr.plan.report.json``."""
    return f"{plan}.report.json"


# ---------------------------------------------------------------- graph steps (no TensorRT)

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


def convert_to_fp16(model: ModelProto) -> ModelProto:
    """The graph in FP16 with FP32 inputs and outputs (ONNX Runtime's converter, with its default
    block list of ops kept in FP32); the result still runs on ONNX Runtime CPU."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    if any(node.op_type in QDQ_OPS for node in graph_nodes(model)):
        raise ModelError("the graph has QuantizeLinear/DequantizeLinear nodes: build it with --precision int8 or "
                         "fp8, not fp16")
    return convert_float_to_float16(copy.deepcopy(model), keep_io_types=True)


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
    fp16_converted: bool = False
    deform_conv: int = 0  # DeformConv nodes in the source graph
    rewritten: int = 0  # of which rewritten to the vqa-rt plugin
    quantization: QuantizationSummary | None = None

    def plugins(self) -> list[dict[str, str]]:
        """The plugins an engine built from this graph needs at run time."""
        if not self.deform_conv:
            return []
        spec = VQA_PLUGIN if self.rewritten else BUILTIN_DEFORM_PLUGIN
        return [asdict(spec)]

    def describe(self) -> str:
        steps = []
        if self.fp16_converted:
            steps.append("converted to FP16 (inputs and outputs FP32)")
        if self.quantization is not None:
            q = self.quantization
            steps.append(f"{q.nodes} Q/DQ nodes ({', '.join(f'{n} {t}' for t, n in sorted(q.types.items()))})")
        if self.rewritten:
            steps.append(f"{self.rewritten} DeformConv -> {PLUGIN_OP} (vqa-rt plugin)")
        elif self.deform_conv:
            steps.append(f"{self.deform_conv} DeformConv left to TensorRT's {BUILTIN_DEFORM_PLUGIN.name}")
        return "; ".join(steps) or "unchanged"


def prepare_graph(model: ModelProto, precision: str, builtin_deformconv: bool = False) -> PreparedGraph:
    """Precision step, then the DeformConv rewrite (see the module docstring)."""
    if precision not in PRECISIONS:
        raise EngineBuildError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    prepared = PreparedGraph(model, precision, deform_conv=count_deform_conv(model))
    if precision == "fp16":
        prepared.model, prepared.fp16_converted = convert_to_fp16(model), True
    elif precision in _QDQ_TYPES:
        prepared.quantization = check_quantized(model, precision)
    if not builtin_deformconv:
        prepared.model, prepared.rewritten = rewrite_deform_conv(prepared.model)
    return prepared


# ---------------------------------------------------------------- optimisation profile (no TensorRT)

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class ShapeRange:
    """The frame sizes and batch sizes a plan accepts; TensorRT tunes for the ``opt`` ones."""

    min_size: Size = (640, 360)
    opt_size: Size = (1920, 1080)
    max_size: Size = (3840, 2160)
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 4

    def axes(self) -> dict[str, tuple[int, int, int]]:
        """(min, opt, max) of each named dynamic axis this range fixes."""
        sizes = (self.min_size, self.opt_size, self.max_size)
        return {
            "batch": (self.min_batch, self.opt_batch, self.max_batch),
            "height": tuple(size[1] for size in sizes),
            "width": tuple(size[0] for size in sizes),
        }


@dataclass(frozen=True)
class InputProfile:
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def describe(self) -> str:
        dims = [str(lo) if lo == hi else f"{lo}..{opt}..{hi}" for lo, opt, hi in zip(self.min, self.opt, self.max)]
        return "x".join(f"[{d}]" if ".." in d else d for d in dims)


def graph_input_shapes(model: ModelProto) -> dict[str, list[int | str | None]]:
    """Each graph input's dimensions: an int, a symbolic name, or None (unknown)."""
    initializers = {t.name for t in model.graph.initializer}
    shapes = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims]
    return shapes


def derive_profile(input_shapes: dict[str, list[int | str | None]], dynamic_axes: dict[str, dict[str, str]],
                   shapes: ShapeRange = ShapeRange(), min_size: int = 1) -> dict[str, InputProfile]:
    """Min/opt/max shapes of every input: static dimensions as they are; dynamic ones named (by the
    ``vqa_rt.dynamic_axes`` metadata, else the graph's dimension name) ``batch``, ``height`` or ``width``
    from ``shapes``. Raises :class:`EngineBuildError` for a range that is empty, below the model's
    ``min_size``, or an axis it cannot name."""
    ranges = shapes.axes()
    for axis, (low, opt, high) in ranges.items():
        if not 1 <= low <= opt <= high:
            raise EngineBuildError(f"the {axis} range must satisfy 1 <= min <= opt <= max; got {low}, {opt}, {high}")
    for axis in ("height", "width"):
        if ranges[axis][0] < min_size:
            raise EngineBuildError(f"the minimum {axis} {ranges[axis][0]} is below the model's minimum frame size of "
                                   f"{min_size} pixels (raise --min-size)")
    profile = {}
    for name, dims in input_shapes.items():
        named = {int(axis): axis_name for axis, axis_name in (dynamic_axes.get(name) or {}).items()}
        low, opt, high = [], [], []
        for index, dim in enumerate(dims):
            if isinstance(dim, int) and dim > 0 and index not in named:
                triple = (dim, dim, dim)
            else:
                axis_name = named.get(index, dim if isinstance(dim, str) else None)
                if axis_name not in ranges:
                    raise EngineBuildError(
                        f"input {name!r}: cannot choose a range for dynamic axis {index} ({axis_name or 'unnamed'}); "
                        f"vqa-rt derives profiles for axes named {', '.join(ranges)}")
                triple = ranges[axis_name]
            for values, value in zip((low, opt, high), triple):
                values.append(value)
        profile[name] = InputProfile(tuple(low), tuple(opt), tuple(high))
    return profile


# ---------------------------------------------------------------- TensorRT messages and reports (pure)

@dataclass(frozen=True)
class ParserErrorInfo:
    """One error of TensorRT's ONNX parser, as plain data."""

    desc: str
    code: str = ""
    node: int = -1
    node_name: str = ""
    node_operator: str = ""


def parser_error_info(error) -> ParserErrorInfo:
    """Copy a ``trt.ParserError`` (``node_name``/``node_operator`` exist from TensorRT 10 on)."""

    def call(name, default):
        method = getattr(error, name, None)
        try:
            return method() if method is not None else default
        except Exception:  # a binding that cannot answer: keep what the others say
            return default

    code = str(call("code", "")).rsplit(".", 1)[-1]
    return ParserErrorInfo(str(call("desc", "")), code, int(call("node", -1)), str(call("node_name", "") or ""),
                           str(call("node_operator", "") or ""))


def format_parser_error(error: ParserErrorInfo) -> str:
    """``node 12 'fuse/deform' (VqaDeformConv2d): UNSUPPORTED_NODE: <desc> (<hint>)``."""
    where = []
    if error.node >= 0:
        where.append(f"node {error.node}")
    if error.node_name:
        where.append(repr(error.node_name))
    if error.node_operator:
        where.append(f"({error.node_operator})")
    text = (" ".join(where) + ": " if where else "") + (f"{error.code}: " if error.code else "") + error.desc.strip()
    if error.node_operator == PLUGIN_OP:
        text += (" (the vqa-rt plugin must be loaded and built against this TensorRT's headers: "
                 "`make kernels TENSORRT_ROOT=...`, then --plugin or $VQA_RT_PLUGIN)")
    elif error.node_operator == "DeformConv":
        text += (f" (TensorRT >= 10.1 maps DeformConv to its {BUILTIN_DEFORM_PLUGIN.name} plugin; without "
                 "--builtin-deformconv vqa-rt's own plugin is used)")
    return text


def format_parser_errors(path: str, errors: list[ParserErrorInfo]) -> str:
    """One line for the CLI: every parser error, most useful first as TensorRT orders them."""
    if not errors:
        return f"{path}: TensorRT's ONNX parser failed without reporting an error"
    body = "; ".join(format_parser_error(e) for e in errors)
    return f"{path}: TensorRT's ONNX parser rejected the graph ({len(errors)} error(s)): {body}"


_PRECISION_PATTERNS = (("FP8", r"FP8|E4M3"), ("BF16", r"BF16|BFLOAT16"), ("FP16", r"FP16|HALF"),
                       ("INT8", r"INT8"), ("INT4", r"INT4"), ("FP32", r"FP32|FLOAT"), ("INT32", r"INT32"),
                       ("INT64", r"INT64"), ("BOOL", r"BOOL"))


def _precision_of(format_text: str) -> str:
    upper = format_text.upper()
    return next((name for name, pattern in _PRECISION_PATTERNS if re.search(pattern, upper)), "other")


def summarize_layers(engine_info: dict[str, Any]) -> dict[str, Any]:
    """Layer count, layer types and output precisions from ``IEngineInspector``'s JSON
    (``{"Layers": [...]}``; layers are dicts with detailed profiling verbosity, names otherwise)."""
    layers = engine_info.get("Layers") or []
    types: Counter[str] = Counter()
    precisions: Counter[str] = Counter()
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        types[str(layer.get("LayerType", "unknown"))] += 1
        outputs = layer.get("Outputs") or []
        if outputs and isinstance(outputs[0], dict):
            precisions[_precision_of(str(outputs[0].get("Format/Datatype", "")))] += 1
    return {"count": len(layers), "types": dict(types.most_common()),
            "output_precisions": dict(precisions.most_common())}


# ---------------------------------------------------------------- the build (TensorRT + GPU)

@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp32"
    shapes: ShapeRange = ShapeRange()
    workspace_mib: int | None = None  # None: TensorRT's default (the device's memory)
    timing_cache: str | None = None  # read if present, written after the build
    plugin: str | None = None  # libvqa_trt_plugin.so; default: the plugin locator
    builtin_deformconv: bool = False
    verbose: bool = False


@dataclass
class BuildReport:
    plan: str
    sidecar: dict[str, Any]
    layers: dict[str, Any]
    seconds: float
    graph: str
    timing_cache: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan, "seconds": round(self.seconds, 2), "graph": self.graph,
                "timing_cache": self.timing_cache, "notes": self.notes, **self.sidecar, "layers": self.layers}

    def _profile_groups(self) -> list[tuple[str, list[str]]]:
        """Inputs grouped by their (described) profile, in input order."""
        groups: dict[str, list[str]] = {}
        for name, shapes in self.sidecar["profile"].items():
            text = InputProfile(**{k: tuple(v) for k, v in shapes.items()}).describe()
            groups.setdefault(text, []).append(name)
        return list(groups.items())

    def summary(self) -> list[str]:
        side, layers = self.sidecar, self.layers
        gpu = side["gpu"]
        lines = [
            f"built {self.plan} in {self.seconds:.1f} s: TensorRT {side['tensorrt']['version']}, {side['precision']}, "
            f"{gpu['name']} (compute capability {gpu['compute_capability']}), {os.path.getsize(self.plan) >> 20} MiB",
            f"graph: {self.graph}",
            "profile: " + "; ".join(f"{', '.join(names)} {shape}" for shape, names in self._profile_groups()),
            f"layers: {layers['count']}" + "".join(
                f", {n} with {p} outputs" for p, n in layers["output_precisions"].items()),
        ]
        if side["plugins"]:
            lines.append("needs plugin(s): " + ", ".join(f"{p['name']} v{p['version']}" for p in side["plugins"]))
        if self.timing_cache:
            lines.append(f"timing cache: {self.timing_cache}")
        lines += [f"note: {note}" for note in self.notes]
        lines.append(f"wrote {self.plan}, {plan_sidecar_path(self.plan)}, {report_path(self.plan)}")
        return lines


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_timing_cache(trt, config, path: str | None, notes: list[str]):
    data = b""
    if path and os.path.isfile(path):
        with open(path, "rb") as handle:
            data = handle.read()
    cache = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        notes.append(f"timing cache {path} does not fit this TensorRT/GPU; started a new one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    elif data:
        notes.append(f"reused timing cache {path} ({len(data) >> 10} KiB)")


def _tensor_io(trt, engine) -> dict[str, list[dict[str, Any]]]:
    io: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        kind = "inputs" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "outputs"
        io[kind].append({"name": name, "dtype": str(engine.get_tensor_dtype(name)).rsplit(".", 1)[-1],
                         "shape": list(engine.get_tensor_shape(name))})
    return io


def _parse(trt, builder, logger, prepared: PreparedGraph, onnx_path: str):
    """The network TensorRT's ONNX parser makes of the prepared graph (strongly typed everywhere: the graph
    alone decides precision, which is the only way TensorRT 11 has)."""
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 11 else 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory(prefix="vqa-rt-build-") as folder:
        graph_path = os.path.join(folder, "graph.onnx")
        large = prepared.model.ByteSize() > 1_900_000_000  # protobuf's 2 GB limit
        onnx.save_model(prepared.model, graph_path, save_as_external_data=large, location="graph.onnx.data")
        parsed = parser.parse_from_file(graph_path)
    errors = [parser_error_info(parser.get_error(i)) for i in range(parser.num_errors)]
    if not parsed or errors:
        raise EngineBuildError(format_parser_errors(onnx_path, errors))
    return network, parser  # the parser must outlive the network's use


def _configure(trt, builder, network, profile: dict[str, InputProfile], options: BuildOptions, notes: list[str]):
    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    if sorted(inputs) != sorted(profile):
        raise EngineBuildError(f"the network's inputs {inputs} differ from the graph's {list(profile)}")
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)  # FP32 layers compute in FP32, as ONNX Runtime does
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions for the report
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    optimization_profile = builder.create_optimization_profile()
    for name, shapes in profile.items():
        optimization_profile.set_shape(name, shapes.min, shapes.opt, shapes.max)
    config.add_optimization_profile(optimization_profile)
    _load_timing_cache(trt, config, options.timing_cache, notes)
    return config


def build_engine(onnx_path: str, plan_path: str, options: BuildOptions = BuildOptions()) -> BuildReport:
    """Build a TensorRT plan from an exported vqa-rt ONNX file; write the plan, its sidecar and report.

    Raises :class:`BackendUnavailableError` where TensorRT, a GPU or the plugin is missing,
    :class:`ModelError` for a model that cannot be built as asked, :class:`EngineBuildError`
    for what TensorRT rejects. Nothing is written unless the build succeeds.
    """
    from vqa_rt.runtime.engines.backends.tensorrt import import_tensorrt, make_logger, start_tensorrt
    from vqa_rt.runtime.engines.native.cuda_probe import probe_driver

    start = time.monotonic()
    if not plan_path.endswith(PLAN_SUFFIX):
        raise EngineBuildError(f"{plan_path}: the plan's name must end in {PLAN_SUFFIX} (the runtime recognises "
                               "plans by it)")
    if options.precision not in PRECISIONS:
        raise EngineBuildError(f"unknown precision {options.precision!r}; choose from {', '.join(PRECISIONS)}")
    check_output_paths([plan_path] + ([options.timing_cache] if options.timing_cache else []))
    model_info = resolve_engine(onnx_path).model
    # Everything that needs only the graph is checked before TensorRT is looked for.
    model = onnx.load(onnx_path)
    try:
        prepared = prepare_graph(model, options.precision, options.builtin_deformconv)
    except ModelError as exc:
        raise ModelError(f"{onnx_path}: {exc}") from None
    profile = derive_profile(graph_input_shapes(prepared.model), model_info.metadata.get("dynamic_axes") or {},
                             options.shapes, model_info.min_size)

    trt = import_tensorrt()
    driver = probe_driver()
    if not driver.gpus:
        raise BackendUnavailableError(f"TensorRT builds engines on a GPU and none is usable here: {driver.error}")
    gpu = driver.gpus[0]  # the device TensorRT builds on (CUDA_VISIBLE_DEVICES picks it)
    if options.precision == "fp8" and tuple(map(int, gpu.compute_capability.split("."))) < FP8_MIN_CAPABILITY:
        raise BackendUnavailableError(f"FP8 needs compute capability 8.9 or newer; {gpu.name} is "
                                      f"{gpu.compute_capability}")
    notes: list[str] = []
    logger = make_logger(trt, options.verbose)
    plugins = prepared.plugins()
    if prepared.rewritten:
        plugins[0]["library"] = register_plugin(trt, options.plugin)
    elif prepared.deform_conv:
        register_builtin_plugins(trt, logger)
        plugins[0]["library"] = "libnvinfer_plugin"
    if options.plugin and not prepared.rewritten:
        notes.append(f"--plugin {options.plugin} not used: the graph has no DeformConv rewritten for it")

    builder = start_tensorrt(trt, logger, "Builder")
    network, _parser = _parse(trt, builder, logger, prepared, onnx_path)
    config = _configure(trt, builder, network, profile, options, notes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{onnx_path}: TensorRT failed to build the engine: {logger.last_error()} "
                               "(--verbose shows TensorRT's log)")
    plan_bytes = memoryview(serialized)
    engine = start_tensorrt(trt, logger).deserialize_cuda_engine(plan_bytes)
    if engine is None:
        raise EngineBuildError(f"the plan TensorRT just built does not deserialise: {logger.last_error()}")
    engine_info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))

    sidecar = {
        "format": PLAN_FORMAT,
        "format_version": PLAN_FORMAT_VERSION,
        "built_by": vqa_rt.__version__,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "onnx": {"path": os.path.abspath(onnx_path), "sha256": _sha256(onnx_path)},
        "metadata": onnx_metadata(model, onnx_path),
        "precision": options.precision,
        "profile": {name: {"min": list(p.min), "opt": list(p.opt), "max": list(p.max)} for name, p in profile.items()},
        "io": _tensor_io(trt, engine),
        "tensorrt": {"version": trt.__version__, "strongly_typed": True},
        "gpu": {"name": gpu.name, "compute_capability": gpu.compute_capability, "memory_mib": gpu.memory_mib,
                "driver": driver.driver_version},
        "plugins": plugins,
    }
    with open_atomic(plan_path, "wb") as handle:
        handle.write(plan_bytes)
    write_atomic(plan_sidecar_path(plan_path), json.dumps(sidecar, indent=2) + "\n")
    if options.timing_cache:
        with open_atomic(options.timing_cache, "wb") as handle:
            handle.write(memoryview(config.get_timing_cache().serialize()))
    report = BuildReport(plan_path, sidecar, summarize_layers(engine_info), time.monotonic() - start,
                         prepared.describe(), options.timing_cache, notes)
    details = report.to_dict()
    details["layers"] = {**report.layers, "engine_information": engine_info}
    write_atomic(report_path(plan_path), json.dumps(details, indent=2) + "\n")
    return report
