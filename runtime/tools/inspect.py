"""``vqa-rt inspect``: what a program needs to drive an exported model (``.onnx``) or a TensorRT plan
(``.plan``, through its sidecar ``PLAN.json``) on its own: tensors, pre-processing, score scale,
plugins and versions.

Only metadata is read (an ONNX graph without its weights' external data; a plan's sidecar, never
the plan's bytes), so nothing here needs TensorRT or a GPU.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import onnx

from vqa_rt.errors import ModelError
from vqa_rt.runtime.engines.backends.trt_flavours import flavour_of
from vqa_rt.runtime.engines.metadata import plan_sidecar_path
from vqa_rt.runtime.engines.native.libraries import (
    BUILTIN_DEFORM_PLUGIN,
    PLUGIN_LIBRARY,
    PLUGIN_OP,
    VQA_PLUGIN,
    PluginSpec,
)
from vqa_rt.runtime.engines.onnx_graph import count_deform_conv
from vqa_rt.runtime.engines.record import Engine, resolve_engine
from vqa_rt.runtime.frames.options import DEFAULT_RANGE, FrameOptions

BUILTIN_PLUGIN_LIBRARY = "libnvinfer_plugin.so"  # TensorRT's own plugins (initLibNvInferPlugins)
# ONNX element types whose TensorRT name (nvinfer1::DataType without the k) differs.
_TRT_DTYPES = {"FLOAT16": "HALF", "BFLOAT16": "BF16", "FLOAT8E4M3FN": "FP8"}


def describe_engine(path: str) -> dict[str, Any]:
    """Everything needed to feed ``path`` (``.onnx`` or ``.plan``) and read its outputs, as a JSON-able dict.

    Dtypes are TensorRT's ``nvinfer1::DataType`` names without the ``k``; a dynamic dimension is its
    axis name (``batch``, ``height``, ``width``), or None where the file names none. Raises
    :class:`ModelError` for a missing or corrupt file, a model vqa-rt did not export, a plan
    without its sidecar.
    """
    engine = resolve_engine(path)  # checks the file (and a plan's sidecar) and the metadata
    info, meta = engine.model, engine.model.metadata
    preprocess = {key: value for key, value in info.preprocess.items() if key != "sampling"}
    # vqa-rt score's colour defaults (a Y4M input's range tag overrides "limited").
    preprocess.update(matrix=FrameOptions().matrix, range=DEFAULT_RANGE)
    is_plan = engine.format == "plan"
    tensors = _describe_plan(engine) if is_plan else _describe_onnx(path)
    return {
        "path": path,
        "format": "tensorrt-plan" if is_plan else "onnx",
        "kind": info.kind,
        "description": meta.get("description"),
        "untrained": info.untrained,
        "weights_source": meta.get("weights_source"),
        "min_size": info.min_size,
        "preprocess": preprocess,
        "sampling": engine.default_sampling.as_dict(),
        "score_scale": info.score_scale,
        "quantization": meta.get("quantization"),
        **tensors,  # inputs, outputs, plugins, versions, plan
        "versions": {"exported_by": meta.get("version"), **tensors["versions"]},
    }


def _dtype(name: str) -> str:
    return _TRT_DTYPES.get(name, name)


def _describe_onnx(path: str) -> dict[str, Any]:
    model = onnx.load(path, load_external_data=False)
    weights = {t.name for t in model.graph.initializer}

    def tensor(value: onnx.ValueInfoProto) -> dict[str, Any]:
        kind = value.type.tensor_type
        return {"name": value.name, "dtype": _dtype(onnx.TensorProto.DataType.Name(kind.elem_type)),
                "shape": [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in kind.shape.dim]}

    deform = count_deform_conv(model)
    plugins = [{**asdict(VQA_PLUGIN), "library": PLUGIN_LIBRARY, "replaces": "DeformConv", "nodes": deform,
                "needed": "in plans built with --deform plugin",
                "alternative": {**asdict(BUILTIN_DEFORM_PLUGIN), "library": BUILTIN_PLUGIN_LIBRARY,
                                "with": "--deform builtin (full TensorRT)"}}] if deform else []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "inputs": [tensor(v) for v in model.graph.input if v.name not in weights],
        "outputs": [tensor(v) for v in model.graph.output],
        "plugins": plugins,
        "versions": {"opset": opset},
        "plan": None,
    }


def _describe_plan(engine: Engine) -> dict[str, Any]:
    path, sidecar = engine.path, engine.sidecar
    dynamic_axes = engine.model.metadata.get("dynamic_axes") or {}
    io = sidecar.get("io")
    if not isinstance(io, dict) or not {"inputs", "outputs"} <= set(io):
        raise ModelError(f"{plan_sidecar_path(path)}: the sidecar has no engine I/O table (\"io\"); rebuild the plan "
                         "with 'vqa-rt build-engine'")
    profile = sidecar.get("profile") or {}

    def tensor(entry: dict[str, Any]) -> dict[str, Any]:
        names = dynamic_axes.get(entry["name"]) or {}
        shape = [dim if dim >= 0 else names.get(str(axis)) for axis, dim in enumerate(entry["shape"])]
        described = {"name": entry["name"], "dtype": _dtype(entry["dtype"]), "shape": shape}
        if entry["name"] in profile:
            described["profile"] = profile[entry["name"]]
        return described

    plugins = [{"name": p["name"], "version": p["version"], "namespace": p["namespace"],
                "library": PLUGIN_LIBRARY if p["name"] == PLUGIN_OP else BUILTIN_PLUGIN_LIBRARY,
                "built_with": p.get("library")} for p in sidecar.get("plugins") or []]
    tensorrt = sidecar.get("tensorrt") or {}
    flavour = flavour_of(tensorrt.get("flavour"))
    return {
        "inputs": [tensor(e) for e in io["inputs"]],
        "outputs": [tensor(e) for e in io["outputs"]],
        "plugins": plugins,
        "versions": {"built_by": sidecar.get("built_by"), "tensorrt": tensorrt.get("version")},
        "plan": {"sidecar": plan_sidecar_path(path), "flavour": flavour.key, "flavour_name": flavour.name,
                 "precision": sidecar.get("precision"), "targets": sidecar.get("targets"),
                 "built_without_gpu": sidecar.get("built_without_gpu"), "gpu": sidecar.get("gpu"),
                 "deform": sidecar.get("deform"), "layers": sidecar.get("layers"), "built_at": sidecar.get("built_at"),
                 "onnx": sidecar.get("onnx")},
    }


def _dims(shape: list[Any]) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in shape) + "]"


def _plugin(entry: dict[str, Any]) -> str:
    return f"{PluginSpec(entry['name'], entry['version'], entry['namespace']).describe()} from {entry['library']}"


def format_description(described: dict[str, Any]) -> list[str]:
    """:func:`describe_engine`'s dict as lines of text."""
    d, versions, plan = described, described["versions"], described["plan"]
    lines = [f"{d['path']}: {'TensorRT plan' if plan else 'ONNX model'}, {d['kind']} model: {d['description']}"
             + (", UNTRAINED weights" if d["untrained"] else "")]
    if plan:
        gpu = plan["gpu"]
        where = ("ahead of time, without a GPU; compiled for the GPU when loaded" if plan["built_without_gpu"]
                 else f"on {gpu['name']}" if gpu else "on an unrecorded GPU")
        lines.append(f"plan: {plan['precision']}, {plan['flavour_name']} {versions['tensorrt']}, for "
                     f"{', '.join(plan['targets'] or ['?'])} (built {where}); built by vqa-rt {versions['built_by']} "
                     f"at {plan['built_at']} from {(plan['onnx'] or {}).get('path')}, exported by vqa-rt "
                     f"{versions['exported_by']}")
        layers = plan["layers"] or {}
        lines.append(f"layers: {layers.get('count')} ("
                     + ", ".join(f"{n} with {p} outputs" for p, n in (layers.get("output_precisions") or {}).items())
                     + "); by type: " + ", ".join(f"{t} {n}" for t, n in (layers.get("types") or {}).items()))
        if plan["deform"]:
            lines.append(f"DeformConv: {plan['deform']}")
    else:
        lines.append(f"exported by vqa-rt {versions['exported_by']}, ONNX opset {versions['opset']}")
    for role in ("inputs", "outputs"):
        lines.append(f"{role}:")
        for tensor in d[role]:
            profile = tensor.get("profile")
            lines.append(f"  {tensor['name']:<10} {tensor['dtype']:<6} {_dims(tensor['shape'])}" + (
                f"  profile min {_dims(profile['min'])} opt {_dims(profile['opt'])} max {_dims(profile['max'])}"
                if profile else ""))
    pre = dict(d["preprocess"])
    lines.append(f"pre-processing: {pre.pop('layout')} {pre.pop('color')} planes from YUV by the {pre.pop('matrix')} "
                 f"matrix, {pre.pop('range')} range (vqa-rt score's defaults), values in {pre.pop('value_range')}, "
                 f"then (x - mean) / std with mean {pre.pop('mean', None)}, std {pre.pop('std', None)}"
                 + (f"; frames at least {d['min_size']} pixels a side" if d["min_size"] > 1 else ""))
    lines += [f"  {key}: {value}" for key, value in pre.items()]
    lines.append("default sampling: " + ", ".join(f"{key} {value}" for key, value in d["sampling"].items()))
    scale = d["score_scale"]
    better = {True: ", higher is better", False: ", lower is better"}.get(scale.get("higher_is_better"), "")
    high = "unbounded" if scale["max"] is None else f"{scale['max']:g}"
    lines.append(f"score scale: {scale['name']}, {scale['min']:g} to {high}{better}")
    if not d["plugins"]:
        lines.append("plugins: none")
    for entry in d["plugins"]:
        if plan:
            lines.append(f"plugin: {_plugin(entry)} (the build used {entry['built_with']})")
        else:
            lines.append(f"plugin: {entry['nodes']} {entry['replaces']} node(s) become {_plugin(entry)} "
                         f"{entry['needed']} (with {entry['alternative']['with']}: {_plugin(entry['alternative'])})")
    quantization = d["quantization"]
    lines.append(f"quantization: {quantization['mode']} ({quantization.get('description')}; for "
                 f"{quantization.get('target')})" if quantization else "quantization: none")
    return lines
