"""Real TensorRT plans, built with no GPU by TensorRT for RTX (pip 'vqa-rt[rtx]'): FR (decomposed DeformConv, and
the plugin where it is built), NR tiny and the QP-map model, FP32/FP16/int8, several targets per plan. Each plan's
sidecar and I/O tensors are checked against the ONNX graph; every request that cannot be built is one error and
leaves nothing written."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from vqa_rt.errors import BackendUnavailableError, EngineBuildError, InputError, ModelError
from vqa_rt.export.onnx_tools.calibration_sets import single_feeds
from vqa_rt.export.onnx_tools.quantize import quantize_onnx
from vqa_rt.export.onnx_tools.trt_build import BuildOptions, build_engine
from vqa_rt.export.onnx_tools.trt_profile import ShapeRange
from vqa_rt.export.onnx_tools.trt_report import report_path
from vqa_rt.export.onnx_tools.trt_targets import choose_platform
from vqa_rt.runtime.engines.backends import trt_flavours
from vqa_rt.runtime.engines.backends.trt_flavours import RTX_LIBRARY, ensure_rtx_library_link
from vqa_rt.runtime.engines.metadata import PLAN_FORMAT_VERSION, onnx_metadata, plan_sidecar_path
from vqa_rt.runtime.engines.native.libraries import find_plugin

RTX_INSTALLED = importlib.util.find_spec("tensorrt_rtx_bindings") is not None
needs_rtx = pytest.mark.skipif(not RTX_INSTALLED, reason="TensorRT for RTX is not installed: pip install 'vqa-rt[rtx]'")
SMALL = ShapeRange((64, 64), (320, 240), (640, 480), 1, 1, 2)  # keeps the FR builds quick


def plugin_or_none() -> str | None:
    try:
        return find_plugin()
    except BackendUnavailableError:
        return None


@pytest.fixture(scope="module")
def nr_int8(nr_export, tmp_path_factory) -> str:
    """The tiny NR model with int8 Q/DQ from vqa-rt's quantizer (calibrated on seeded random frames)."""
    path = str(tmp_path_factory.mktemp("nr_int8") / "nr_int8.onnx")
    frames = np.random.default_rng(3).random((8, 3, 32, 32), dtype=np.float32)
    quantize_onnx(nr_export.path, path, "int8", single_feeds("pixels", frames))
    return path


@pytest.fixture(scope="module")
def fr_int8(fr_export, tmp_path_factory) -> str:
    """The FR model with int8 Q/DQ from vqa-rt's FR recipe (calibrated on seeded random frame pairs)."""
    path = str(tmp_path_factory.mktemp("fr_int8") / "fr_int8.onnx")
    rng = np.random.default_rng(5)
    inputs = [value.name for value in onnx.load(fr_export.path, load_external_data=False).graph.input]
    feeds = [{name: rng.standard_normal((1, 3, 64, 96), dtype=np.float32) for name in inputs} for _ in range(4)]
    quantize_onnx(fr_export.path, path, "int8", feeds, kind="fr")
    return path


def onnx_io(path: str) -> dict[str, list[dict]]:
    """The graph's inputs and outputs as a plan's sidecar records them (TensorRT dtype names, -1 when dynamic)."""
    model = onnx.load(path, load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    names = {TensorProto.FLOAT: "FLOAT", TensorProto.FLOAT16: "HALF", TensorProto.INT64: "INT64"}

    def entry(value):
        kind = value.type.tensor_type
        return {"name": value.name, "dtype": names[kind.elem_type],
                "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in kind.shape.dim]}

    return {"inputs": [entry(v) for v in model.graph.input if v.name not in weights],
            "outputs": [entry(v) for v in model.graph.output]}


def check_plan(plan: str, onnx_path: str, precision: str, targets: list[str], deform: str | None) -> dict:
    """The plan exists and its sidecar and report say what was built, I/O equal to the ONNX graph's."""
    assert os.path.getsize(plan) > 100_000
    sidecar = json.loads(open(plan_sidecar_path(plan)).read())
    assert sidecar["format_version"] == PLAN_FORMAT_VERSION
    assert sidecar["tensorrt"]["flavour"] == "rtx" and sidecar["tensorrt"]["name"] == "TensorRT for RTX"
    assert sidecar["tensorrt"]["version"] == __import__("tensorrt_rtx_bindings").__version__
    assert sidecar["targets"] == targets and sidecar["built_without_gpu"] is True and sidecar["gpu"] is None
    assert sidecar["precision"] == precision and sidecar["deform"] == deform
    assert sidecar["metadata"] == onnx_metadata(onnx.load(onnx_path, load_external_data=False))
    assert sidecar["io"] == onnx_io(onnx_path)
    serialized = open(plan, "rb").read()  # the engine's I/O tensor names are in the plan itself
    assert all(entry["name"].encode() in serialized for role in ("inputs", "outputs") for entry in sidecar["io"][role])
    for name, shapes in sidecar["profile"].items():
        assert len(shapes["min"]) == len(next(e["shape"] for e in sidecar["io"]["inputs"] if e["name"] == name))
    layers = sidecar["layers"]
    assert layers["count"] > 5 and sum(layers["types"].values()) == layers["count"]
    report = json.loads(open(report_path(plan)).read())
    assert len(report["layers"]["engine_information"]["Layers"]) == layers["count"]
    return sidecar


@needs_rtx
@pytest.mark.parametrize("precision, targets", [
    ("fp32", ["sm80", "sm89"]),
    ("fp16", ["sm86", "sm120"]),
])
def test_fr_plans_with_decomposed_deform_conv(fr_export, tmp_path, precision, targets):
    plan = str(tmp_path / "fr.plan")
    report = build_engine(fr_export.path, plan, BuildOptions(precision, SMALL, targets=",".join(targets),
                                                             deform="decomposed"))
    sidecar = check_plan(plan, fr_export.path, precision, targets, "decomposed")
    assert sidecar["plugins"] == []
    if precision == "fp16":
        assert sidecar["layers"]["output_precisions"].get("FP16", 0) > 0
    assert "3 DeformConv decomposed into GridSample + MatMul" in report.graph
    assert sidecar["profile"]["ref"] == {"min": [1, 3, 64, 64], "opt": [1, 3, 240, 320], "max": [2, 3, 480, 640]}


@needs_rtx
def test_fr_int8_plan(fr_int8, tmp_path):
    """vqa-rt's int8 FR graph builds (its biases float: TensorRT's parser refuses an int32 DequantizeLinear)."""
    plan = str(tmp_path / "fr.plan")
    report = build_engine(fr_int8, plan, BuildOptions("int8", SMALL, targets="sm89", deform="decomposed"))
    sidecar = check_plan(plan, fr_int8, "int8", ["sm89"], "decomposed")
    assert sidecar["layers"]["output_precisions"].get("INT8", 0) > 0
    assert "Q/DQ nodes" in report.graph


@needs_rtx
@pytest.mark.parametrize("precision, targets", [
    ("fp32", ["sm80", "sm86"]),
    ("fp16", ["sm75", "sm89"]),
    ("int8", ["sm86", "sm120"]),
])
def test_nr_tiny_plans(nr_export, nr_int8, tmp_path, precision, targets):
    source = nr_int8 if precision == "int8" else nr_export.path
    plan = str(tmp_path / "nr.plan")
    build_engine(source, plan, BuildOptions(precision, targets=",".join(targets)))
    sidecar = check_plan(plan, source, precision, targets, None)
    if precision == "int8":
        assert sidecar["layers"]["output_precisions"].get("INT8", 0) > 0


@needs_rtx
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_qpmap_plans(qpmap_export, tmp_path, precision):
    plan = str(tmp_path / "qp.plan")
    build_engine(qpmap_export.path, plan, BuildOptions(precision, targets="sm86,sm89,sm120"))
    check_plan(plan, qpmap_export.path, precision, ["sm86", "sm89", "sm120"], None)


@needs_rtx
@pytest.mark.skipif(plugin_or_none() is None, reason="libvqa_trt_plugin.so is not built (it needs the TensorRT "
                    "headers: make kernels TENSORRT_ROOT=...; CI has none)")
def test_fr_plan_with_the_vqa_rt_plugin(fr_export, tmp_path):
    plan = str(tmp_path / "fr.plan")
    report = build_engine(fr_export.path, plan, BuildOptions("fp16", SMALL, targets="sm89"))  # auto: the plugin
    sidecar = check_plan(plan, fr_export.path, "fp16", ["sm89"], "plugin")
    assert [p["name"] for p in sidecar["plugins"]] == ["VqaDeformConv2d"]
    assert sidecar["plugins"][0]["library"] == plugin_or_none()
    assert "3 DeformConv -> VqaDeformConv2d" in report.graph


@needs_rtx
def test_auto_deform_without_the_plugin_decomposes_and_says_why(fr_export, tmp_path, monkeypatch):
    monkeypatch.setenv("VQA_RT_PLUGIN", str(tmp_path / "absent" / "libvqa_trt_plugin.so"))
    plan = str(tmp_path / "fr.plan")
    report = build_engine(fr_export.path, plan, BuildOptions("fp32", SMALL, targets="sm86"))
    assert report.sidecar["deform"] == "decomposed"
    assert any("plugin not found" in note and "decomposed" in note for note in report.notes)


# ---------------------------------------------------------------- requests that cannot be built

def build_fails(onnx_path, folder, error, match, **options):
    before = sorted(os.listdir(folder))
    with pytest.raises(error, match=match):
        build_engine(onnx_path, os.path.join(folder, "m.plan"), BuildOptions(**options))
    assert sorted(os.listdir(folder)) == before


def test_build_checks_the_request_before_looking_for_tensorrt(fr_export, tmp_path):
    with pytest.raises(EngineBuildError, match="must end in .plan"):
        build_engine(fr_export.path, str(tmp_path / "fr.engine"))
    build_fails(fr_export.path, tmp_path, ModelError, "fr.onnx: --precision int8 needs an explicitly quantized graph",
                precision="int8", targets="sm86")
    build_fails(fr_export.path, tmp_path, EngineBuildError, "unknown target 'sm8x'", targets="sm86,sm8x")
    build_fails(fr_export.path, tmp_path, EngineBuildError, "native .* cannot be combined", targets="native,sm86")
    build_fails(fr_export.path, tmp_path, EngineBuildError, "full TensorRT builds only for the GPU it runs on",
                flavour="tensorrt", targets="sm86")
    with pytest.raises(EngineBuildError, match="FP8 needs compute capability 8.9 or newer .*; sm80, sm86 is older"):
        choose_platform("auto", "sm80,sm86,sm89", "fp8")


@needs_rtx
@pytest.mark.parametrize("options, error, match", [
    ({"targets": "sm90"}, EngineBuildError, "cannot build sm90 .*full TensorRT on such a GPU"),
    ({"targets": "sm70"}, EngineBuildError, "cannot build sm70; it builds sm75, sm80"),
    ({"targets": "sm86", "deform": "builtin"}, EngineBuildError, "no built-in DeformConv plugin"),
    ({"targets": "sm86", "deform": "sideways"}, EngineBuildError, "unknown --deform 'sideways'"),
])
def test_fr_requests_rtx_cannot_build(fr_export, tmp_path, options, error, match):
    build_fails(fr_export.path, tmp_path, error, match, **options)


@needs_rtx
def test_sm75_fp32_matrix_multiplies_are_refused_with_the_way_out(nr_export, tmp_path):
    build_fails(nr_export.path, tmp_path, EngineBuildError, "FP32 GEMM is not supported.*--precision fp16",
                targets="sm75")


def test_no_gpu_and_no_target_asks_for_targets(qpmap_export, tmp_path):
    from vqa_rt.runtime.engines.native.cuda_probe import probe_driver

    if probe_driver().gpus:
        pytest.skip("a GPU is visible: the default is a native build")
    build_fails(qpmap_export.path, tmp_path, EngineBuildError, "needs a visible NVIDIA GPU .*--target sm80,sm86")
    build_fails(qpmap_export.path, tmp_path, EngineBuildError, "--target native needs a visible NVIDIA GPU",
                targets="native")


@needs_rtx
def test_an_op_tensorrt_cannot_import_is_named_with_its_node(qpmap_export, tmp_path):
    model = onnx.load(qpmap_export.path)
    last = model.graph.output[0].name
    model.graph.node.append(helper.make_node("Frobnicate", [last], ["frobbed"], name="odd/frob", domain="example"))
    model.graph.output[0].name = "frobbed"
    model.opset_import.append(helper.make_opsetid("example", 1))
    odd = str(tmp_path / "odd.onnx")
    onnx.save(model, odd)
    build_fails(odd, tmp_path, EngineBuildError, "odd.onnx: TensorRT's ONNX parser rejected the graph .*'odd/frob' "
                "\\(Frobnicate\\)", targets="sm86")


@pytest.mark.parametrize("content, match", [
    (b"\x08\x07garbage that is not protobuf" * 10, "not a valid ONNX model"),
    (None, "not a vqa-rt model"),
])
def test_corrupt_or_foreign_onnx_is_one_error(tmp_path, content, match):
    path = tmp_path / "m.onnx"
    if content is None:  # a valid ONNX file that vqa-rt did not export
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 3))],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 3))])
        onnx.save(helper.make_model(graph), path)
    else:
        path.write_bytes(content)
    build_fails(str(path), tmp_path, ModelError, match, targets="sm86")


def test_an_output_that_is_the_input_is_refused(qpmap_export, tmp_path):
    plan = tmp_path / "qp.plan"
    plan.symlink_to(qpmap_export.path)
    with pytest.raises(InputError, match="qp.plan: this output is the input"):
        build_engine(qpmap_export.path, str(plan), BuildOptions(targets="sm86"))
    assert plan.is_symlink() and os.readlink(plan) == qpmap_export.path
    with pytest.raises(InputError, match="written twice"):
        build_engine(qpmap_export.path, str(tmp_path / "b.plan"),
                     BuildOptions(targets="sm86", timing_cache=str(tmp_path / "b.plan.json")))


# ---------------------------------------------------------------- the RTX parser's library link

def test_the_rtx_library_link_is_made_beside_the_library(tmp_path):
    (tmp_path / f"{RTX_LIBRARY}.1").write_bytes(b"stands in for the library")
    ensure_rtx_library_link(str(tmp_path))
    assert os.readlink(tmp_path / RTX_LIBRARY) == f"{RTX_LIBRARY}.1"
    ensure_rtx_library_link(str(tmp_path))  # already there: nothing to do


def test_a_link_that_cannot_be_made_is_one_error_saying_the_command(tmp_path, monkeypatch):
    (tmp_path / f"{RTX_LIBRARY}.1").write_bytes(b"stands in for the library")

    def refuse(*_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(trt_flavours.os, "symlink", refuse)
    with pytest.raises(BackendUnavailableError, match=f"cannot be made here \\(Permission denied\\); run `ln -s "
                       f"{RTX_LIBRARY}.1 {tmp_path}/{RTX_LIBRARY}`"):
        ensure_rtx_library_link(str(tmp_path))


@needs_rtx
def test_importing_the_rtx_flavour_leaves_the_link_in_place():
    import tensorrt_rtx_libs

    trt_flavours.import_flavour(trt_flavours.RTX)
    folder = os.path.dirname(tensorrt_rtx_libs.__file__)
    assert os.path.realpath(os.path.join(folder, RTX_LIBRARY)) == os.path.realpath(
        os.path.join(folder, f"{RTX_LIBRARY}.1"))


@needs_rtx
@pytest.mark.parametrize("preset, frames", [("tiny-onevision", 1), ("tiny-mplug-owl2", 1), ("tiny-mplug-owl2", 2)])
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_the_other_nr_families_build(preset, frames, precision, tmp_path):
    """LLaVA-OneVision, mPLUG-Owl2 and an mPLUG-Owl2 clip graph (five-dimensional input) become plans, int8 from
    vqa-rt's Q/DQ quantizer."""
    import dataclasses

    from vqa_rt.export.models.checkpoint import random_init
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    spec = get_spec("nr")
    loaded = random_init(spec, 0, dataclasses.replace(spec.config_from_preset(preset), frames=frames))
    source = str(tmp_path / "nr.onnx")
    export_onnx(spec, loaded, source)
    if precision == "int8":
        pixels = np.random.default_rng(3).standard_normal(loaded.config.input_shape(8)).astype(np.float32)
        quantize_onnx(source, str(tmp_path / "nr_int8.onnx"), "int8", single_feeds("pixels", pixels))
        source = str(tmp_path / "nr_int8.onnx")
    plan = str(tmp_path / "nr.plan")
    build_engine(source, plan, BuildOptions(precision, targets="sm89"))
    sidecar = check_plan(plan, source, precision, ["sm89"], None)
    assert sidecar["profile"]["pixels"]["min"] == [1, *loaded.config.input_shape(1)[1:]]
    if precision == "int8":
        assert sidecar["layers"]["output_precisions"].get("INT8", 0) > 0
