"""``describe_engine``: an exported model's tensors, pre-processing, plugins and versions, from the ONNX
graph and its metadata, or from a plan's sidecar."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest

import vqa_rt
from vqa_rt.errors import ModelError
from vqa_rt.export.onnx_tools.trt_graph import prepare_graph
from vqa_rt.export.onnx_tools.trt_profile import ShapeRange, derive_profile, graph_input_shapes
from vqa_rt.runtime.engines.metadata import PLAN_FORMAT, PLAN_FORMAT_VERSION, onnx_metadata
from vqa_rt.runtime.engines.record import resolve_engine
from vqa_rt.runtime.tools.inspect import describe_engine, format_description

BUILT_PLUGIN = "/opt/vqa-rt/build/kernels/lib/libvqa_trt_plugin.so"  # where the (pretend) build found the plugin


def graph_io(path: str) -> tuple[list[str], list[str]]:
    graph = onnx.load(path, load_external_data=False).graph
    return [v.name for v in graph.input], [v.name for v in graph.output]


def test_fr_onnx(fr_export):
    described = describe_engine(fr_export.path)
    model = onnx.load(fr_export.path, load_external_data=False)
    preprocess = onnx_metadata(model)["preprocess"]
    inputs, outputs = graph_io(fr_export.path)
    assert described["format"] == "onnx" and described["kind"] == "fr" and described["plan"] is None
    assert [t["name"] for t in described["inputs"]] == inputs == ["ref", "dist", "ref_prev", "dist_prev"]
    assert [t["name"] for t in described["outputs"]] == outputs == ["score", "spatial", "temporal"]
    assert all(t["shape"] == ["batch", 3, "height", "width"] and t["dtype"] == "FLOAT" for t in described["inputs"])
    assert all(t["shape"] == ["batch"] for t in described["outputs"])
    pre = described["preprocess"]
    assert (pre["mean"], pre["std"], pre["value_range"]) == (preprocess["mean"], preprocess["std"], [0.0, 1.0])
    assert (pre["layout"], pre["color"], pre["matrix"], pre["range"]) == ("NCHW", "RGB", "bt709", "limited")
    assert described["sampling"] == {"frame_stride": 1} and described["min_size"] == 64
    assert described["score_scale"] == {"name": "DCR", "min": 1.0, "max": 7.0, "higher_is_better": True}
    assert described["untrained"] is True and described["quantization"] is None
    deform = sum(node.op_type == "DeformConv" for node in model.graph.node)
    assert deform > 0
    [plugin] = described["plugins"]
    assert (plugin["name"], plugin["version"], plugin["namespace"], plugin["library"], plugin["nodes"]) == (
        "VqaDeformConv2d", "1", "vqa_rt", "libvqa_trt_plugin.so", deform)
    assert plugin["alternative"]["name"] == "ModulatedDeformConv2d"
    opset = next(o.version for o in model.opset_import if o.domain == "")
    assert described["versions"] == {"exported_by": vqa_rt.__version__, "opset": opset}
    json.dumps(described)  # JSON-able


def test_qpmap_onnx_needs_no_plugin_and_has_an_open_scale(qpmap_export):
    described = describe_engine(qpmap_export.path)
    assert [t["name"] for t in described["inputs"]] == graph_io(qpmap_export.path)[0] == ["rgb"]
    assert described["plugins"] == []
    assert described["preprocess"]["block_size"] == 16 and described["preprocess"]["mean"] == [0.0, 0.0, 0.0]
    assert described["score_scale"]["max"] is None
    lines = format_description(described)
    assert "plugins: none" in lines and "score scale: quantization step, 0 to unbounded" in lines


def test_quantization_record_is_reported(qpmap_export, tmp_path):
    """The record ``vqa-rt quantize`` adds to the metadata, added here by hand to a copy of the model."""
    model = onnx.load(qpmap_export.path)
    record = {"mode": "int8", "description": "explicit Q/DQ", "target": "TensorRT", "fidelity": {"plcc": 0.99}}
    model.metadata_props.add(key="vqa_rt.quantization", value=json.dumps(record))
    path = str(tmp_path / "qp.q.onnx")
    onnx.save(model, path)
    described = describe_engine(path)
    assert described["quantization"] == record
    assert "quantization: int8 (explicit Q/DQ; for TensorRT)" in format_description(described)


def plan_sidecar(onnx_path: str) -> dict:
    """The sidecar ``build_engine`` writes for an fp32 build with the default profile. What needs no
    TensorRT is computed by build-engine's own functions (metadata, graph preparation and plugins,
    profile); what TensorRT and the GPU report ("io", "tensorrt", "gpu") is written by hand the way
    ``build_engine`` records it (-1 for a dynamic dimension, as TensorRT reports it)."""
    model = onnx.load(onnx_path)
    info = resolve_engine(onnx_path).model
    prepared = prepare_graph(model, "fp32")
    profile = derive_profile(graph_input_shapes(prepared.model), info.metadata["dynamic_axes"], ShapeRange(),
                             info.min_size)
    plugins = prepared.plugins()
    plugins[0]["library"] = BUILT_PLUGIN
    return {
        "format": PLAN_FORMAT, "format_version": PLAN_FORMAT_VERSION, "built_by": vqa_rt.__version__,
        "built_at": "2025-01-01T00:00:00+0000",
        "onnx": {"path": onnx_path, "sha256": hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()},
        "metadata": onnx_metadata(model, onnx_path), "precision": "fp32",
        "profile": {name: {"min": list(p.min), "opt": list(p.opt), "max": list(p.max)} for name, p in profile.items()},
        "io": {"inputs": [{"name": name, "dtype": "FLOAT", "shape": [-1, 3, -1, -1]} for name in info.inputs],
               "outputs": [{"name": name, "dtype": "FLOAT", "shape": [-1]} for name in info.outputs]},
        "tensorrt": {"flavour": "tensorrt", "name": "TensorRT", "version": "10.13.3.9", "strongly_typed": True},
        "targets": ["sm90"], "built_without_gpu": False,
        "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "memory_mib": 81559, "driver": "580.65"},
        "deform": "plugin", "plugins": plugins,
        "layers": {"count": 40, "types": {"CaskConvolution": 30, "PluginV3": 3, "Reformat": 7},
                   "output_precisions": {"FP32": 40}},
    }


@pytest.fixture
def fr_plan(fr_export, tmp_path) -> str:
    """A .plan whose bytes are NOT a TensorRT engine (none can be built here) beside a sidecar shaped as
    build-engine writes it (see :func:`plan_sidecar`): only the sidecar is read."""
    plan = tmp_path / "fr.plan"
    plan.write_bytes(b"placeholder bytes, not a TensorRT engine")
    (tmp_path / "fr.plan.json").write_text(json.dumps(plan_sidecar(fr_export.path)))
    return str(plan)


def test_plan_is_described_from_its_sidecar(fr_plan, fr_export):
    described = describe_engine(fr_plan)
    onnx_described = describe_engine(fr_export.path)
    assert described["format"] == "tensorrt-plan" and described["kind"] == "fr"
    for key in ("preprocess", "sampling", "score_scale", "min_size", "untrained", "quantization"):
        assert described[key] == onnx_described[key], key
    for role in ("inputs", "outputs"):  # dynamic dimensions named as in the ONNX graph where the metadata names them
        assert [t["name"] for t in described[role]] == [t["name"] for t in onnx_described[role]]
    assert all(t["shape"] == ["batch", 3, "height", "width"] for t in described["inputs"])
    assert described["inputs"][0]["profile"] == {"min": [1, 3, 360, 640], "opt": [1, 3, 1080, 1920],
                                                 "max": [4, 3, 2160, 3840]}
    assert described["outputs"][0] == {"name": "score", "dtype": "FLOAT", "shape": [None]}
    assert described["plugins"] == [{"name": "VqaDeformConv2d", "version": "1", "namespace": "vqa_rt",
                                     "library": "libvqa_trt_plugin.so", "built_with": BUILT_PLUGIN}]
    assert described["versions"] == {"exported_by": vqa_rt.__version__, "built_by": vqa_rt.__version__,
                                     "tensorrt": "10.13.3.9"}
    assert described["plan"]["precision"] == "fp32" and described["plan"]["sidecar"] == fr_plan + ".json"
    lines = format_description(described)
    assert lines[0].startswith(f"{fr_plan}: TensorRT plan, fr model:")
    assert lines[1].startswith("plan: fp32, TensorRT 10.13.3.9, for sm90 (built on NVIDIA H100 80GB HBM3); built by")
    assert lines[2] == "layers: 40 (40 with FP32 outputs); by type: CaskConvolution 30, PluginV3 3, Reformat 7"
    assert lines[3] == "DeformConv: plugin"
    assert ("  ref        FLOAT  [batch, 3, height, width]  profile min [1, 3, 360, 640] opt [1, 3, 1080, 1920] "
            "max [4, 3, 2160, 3840]") in lines
    assert (f"plugin: VqaDeformConv2d v1 (namespace 'vqa_rt') from libvqa_trt_plugin.so (the build used "
            f"{BUILT_PLUGIN})") in lines


def test_plan_sidecar_without_io_is_a_model_error(fr_plan):
    sidecar = Path(fr_plan + ".json")
    data = json.loads(sidecar.read_text())
    del data["io"]
    sidecar.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"no engine I/O table .*vqa-rt build-engine"):
        describe_engine(fr_plan)
