"""What a build says: TensorRT's parser errors as one line, the layer summary (from the engine inspector's JSON or
the builder's detailed layer log), and the report printed and written beside the plan (no TensorRT needed)."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vqa_rt.export.onnx_tools.trt_profile import InputProfile
from vqa_rt.runtime.engines.metadata import plan_sidecar_path
from vqa_rt.runtime.engines.native.libraries import BUILTIN_DEFORM_PLUGIN, PLUGIN_OP


def report_path(plan: str) -> str:
    """The build report written beside a plan: ``fr.plan`` -> ``fr.plan.report.json``."""
    return f"{plan}.report.json"


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



_LAYER_LINE = re.compile(r"^Name: (?P<name>.*?), LayerType: (?P<type>[^,]*), .*?Outputs: \[(?P<outputs>.*?)\], "
                         r"TacticName: .*?Metadata:\s?(?P<metadata>.*)$")
_IO_LINE = re.compile(r"^\s*Name: (?P<name>.*?), IOMode: (?P<mode>\w+), DataType: (?P<dtype>\w+), "
                      r"Dimensions: \[(?P<dims>[-\d,]*)\]")
_DATATYPE = re.compile(r"Datatype: (\w+)")
_LOG_DTYPES = {"FLOAT": "FLOAT", "HALF": "HALF", "BFLOAT16": "BF16", "BF16": "BF16", "INT8": "INT8", "FP8": "FP8",
               "INT32": "INT32", "INT64": "INT64", "BOOL": "BOOL", "UINT8": "UINT8", "INT4": "INT4"}


def parse_layer_log(text: str) -> dict[str, Any]:
    """The builder's detailed layer log (the ``Layers:`` message TensorRT for RTX logs at verbose severity with
    detailed profiling verbosity; it has no engine inspector without a GPU) in the engine inspector's JSON shape:
    ``{"Layers": [{"Name", "LayerType", "Outputs": [{"Name", "Format/Datatype"}], "Metadata"}], "Bindings":
    [{"Name", "IOMode", "DataType", "Dimensions"}]}``. Unrecognised lines are skipped."""
    layers, bindings = [], []
    section = "layers"
    for line in text.splitlines():
        if line.startswith("I/O Tensors:"):
            section = "io"
        elif line.startswith("Engine Metadata:"):
            section = "metadata"
        elif section == "layers" and (match := _LAYER_LINE.match(line)):
            outputs = [{"Format/Datatype": dtype} for dtype in _DATATYPE.findall(match["outputs"])]
            layers.append({"Name": match["name"], "LayerType": match["type"], "Outputs": outputs,
                           "Metadata": match["metadata"]})
        elif section == "io" and (match := _IO_LINE.match(line)):
            bindings.append({"Name": match["name"], "IOMode": match["mode"], "DataType": match["dtype"],
                             "Dimensions": [int(d) for d in match["dims"].split(",") if d]})
    return {"Layers": layers, "Bindings": bindings}


def io_from_layer_log(engine_info: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The engine's inputs and outputs (name, TensorRT dtype name, shape with -1 for dynamic) from
    :func:`parse_layer_log`'s ``Bindings``."""
    io: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    for binding in engine_info.get("Bindings") or []:
        kind = "inputs" if binding["IOMode"].lower() == "input" else "outputs"
        dtype = binding["DataType"].upper()
        io[kind].append({"name": binding["Name"], "dtype": _LOG_DTYPES.get(dtype, dtype),
                         "shape": list(binding["Dimensions"])})
    return io


@dataclass
class BuildReport:
    """What one build did: the sidecar written beside the plan plus what only the report keeps."""

    plan: str
    sidecar: dict[str, Any]
    seconds: float
    graph: str
    engine_information: dict[str, Any]
    timing_cache: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report file's content: the sidecar, the build's own facts, every layer."""
        layers = {**self.sidecar["layers"], "engine_information": self.engine_information}
        return {"plan": self.plan, "seconds": round(self.seconds, 2), "graph": self.graph,
                "timing_cache": self.timing_cache, "notes": self.notes, **self.sidecar, "layers": layers}

    def _profile_groups(self) -> list[tuple[str, list[str]]]:
        """Inputs grouped by their (described) profile, in input order."""
        groups: dict[str, list[str]] = {}
        for name, shapes in self.sidecar["profile"].items():
            text = InputProfile(**{k: tuple(v) for k, v in shapes.items()}).describe()
            groups.setdefault(text, []).append(name)
        return list(groups.items())

    def summary(self) -> list[str]:
        side = self.sidecar
        layers, trt = side["layers"], side["tensorrt"]
        gpu = side["gpu"]
        where = (f"{gpu['name']} ({', '.join(side['targets'])})" if gpu else
                 f"{', '.join(side['targets'])}, ahead of time (no GPU used)")
        lines = [
            f"built {self.plan} in {self.seconds:.1f} s: {trt['name']} {trt['version']}, {side['precision']}, "
            f"for {where}, {os.path.getsize(self.plan) / 2**20:.1f} MiB",
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
