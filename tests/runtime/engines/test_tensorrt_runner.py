"""The TensorRT runner and plans: sidecar metadata and compatibility checks on the CPU, and a real TensorRT for
RTX plan refused with one line where there is no GPU; on a GPU with a TensorRT flavour (full or RTX; the plugin
where a plan needs it), plans built from a small exported FR model against ONNX Runtime CPU (FP32 relative
error <= 1e-4, FP16 <= 2e-2 on the scores), also scored with GPU pre-processing (libvqa_kernels) against the
ONNX file scored on the CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from vqa_rt.errors import BackendUnavailableError, InputError, ModelError
from vqa_rt.runtime.engines.backends.tensorrt import plan_mismatches, release, runtime_cache_path
from vqa_rt.runtime.engines.metadata import PLAN_FORMAT, PLAN_FORMAT_VERSION, onnx_metadata, plan_sidecar_path
from vqa_rt.runtime.engines.record import resolve_engine
from vqa_rt.runtime.engines.runners import open_runner

TENSORRT_IMPORTABLE = importlib.util.find_spec("tensorrt") is not None
RTX_INSTALLED = importlib.util.find_spec("tensorrt_rtx_bindings") is not None
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}  # max |trt - ort| / max |ort| per output


def sidecar(metadata=None, trt="10.13.3.9", gpu=("NVIDIA H100 80GB HBM3", "9.0"), plugins=None) -> dict:
    """A full TensorRT plan's sidecar, built on ``gpu``."""
    return {"format": PLAN_FORMAT, "format_version": PLAN_FORMAT_VERSION, "metadata": metadata or {},
            "precision": "fp16", "tensorrt": {"flavour": "tensorrt", "name": "TensorRT", "version": trt},
            "targets": ["sm" + gpu[1].replace(".", "")], "built_without_gpu": False,
            "gpu": {"name": gpu[0], "compute_capability": gpu[1]}, "plugins": plugins or []}


def rtx_sidecar(targets=("sm80", "sm89"), version="1.7.1.116") -> dict:
    """A TensorRT for RTX plan's sidecar, built ahead of time for ``targets``."""
    return dict(sidecar(), tensorrt={"flavour": "rtx", "name": "TensorRT for RTX", "version": version},
                targets=list(targets), built_without_gpu=True, gpu=None)


@pytest.fixture
def plan_files(fr_export, tmp_path):
    """A .plan path whose sidecar carries the exported FR model's metadata. The plan's bytes are
    NOT an engine (none can be built here): only the sidecar is read on these paths."""

    def write(**changes):
        plan = tmp_path / "fr.plan"
        plan.write_bytes(b"placeholder bytes, not a TensorRT engine")
        data = sidecar(onnx_metadata(onnx.load(fr_export.path, load_external_data=False)))
        data.update(changes)
        (tmp_path / "fr.plan.json").write_text(json.dumps(data))
        return str(plan)

    return write


# ---------------------------------------------------------------- sidecar and compatibility (CPU)

def test_model_info_of_a_plan_comes_from_its_sidecar(plan_files, fr_export):
    plan = plan_files()
    assert plan_sidecar_path(plan) == plan + ".json"
    engine, onnx_engine = resolve_engine(plan, ("fr",)), resolve_engine(fr_export.path)
    info, onnx_info = engine.model, onnx_engine.model
    assert (info.kind, info.inputs, info.outputs, info.min_size) == ("fr", onnx_info.inputs, onnx_info.outputs, 64)
    assert info.preprocess == onnx_info.preprocess and info.untrained and engine.path == plan


@pytest.mark.parametrize("change, message", [
    ("no-sidecar", "sidecar .*fr.plan.json is missing.*vqa-rt build-engine"),
    ("not-json", "cannot read the plan's sidecar"),
    ("foreign", "not a vqa-rt plan sidecar"),
    ("version", "sidecar format version 99"),
])
def test_bad_sidecars_are_model_errors(plan_files, change, message):
    plan = plan_files()
    side = plan_sidecar_path(plan)
    if change == "no-sidecar":
        os.remove(side)
    elif change == "not-json":
        Path(side).write_text("{")
    elif change == "foreign":
        Path(side).write_text(json.dumps({"format": "other"}))
    else:
        plan_files(format_version=99)
    with pytest.raises(ModelError, match=message):
        resolve_engine(plan)


def test_missing_plan_is_reported_as_such(tmp_path):
    with pytest.raises(ModelError, match="no such engine file"):
        resolve_engine(str(tmp_path / "none.plan"))


def test_release_and_plan_mismatches():
    assert release("10.13.3.9.post1") == (10, 13, 3) and release("11.0.0.114") == (11, 0, 0)
    built = sidecar()
    assert plan_mismatches(built, "10.13.3.9", "NVIDIA H100 80GB HBM3", "9.0") == ([], [])
    errors, _ = plan_mismatches(built, "10.16.1.11")
    assert errors == ["it was built with TensorRT 10.13.3.9 and this is TensorRT 10.16.1.11"]
    errors, _ = plan_mismatches(built, "10.13.3.9", "NVIDIA A100-SXM4-80GB", "8.0")
    assert errors == ["it was built for sm90 and this GPU is NVIDIA A100-SXM4-80GB (sm80)"]
    errors, warnings = plan_mismatches(built, "10.13.3.9", "NVIDIA H100 PCIe", "9.0")
    assert errors == [] and "rebuild it here for the best speed" in warnings[0]


def test_rtx_plans_run_on_the_targets_they_were_built_for():
    built = rtx_sidecar()
    assert plan_mismatches(built, "1.7.1.116", "NVIDIA L4", "8.9") == ([], [])  # ahead of time: no tuning warning
    errors, _ = plan_mismatches(built, "1.7.1.116", "NVIDIA H200", "9.0")
    assert errors == ["it was built for sm80, sm89 and this GPU is NVIDIA H200 (sm90)"]
    errors, _ = plan_mismatches(built, "1.6.1.120", "NVIDIA L4", "8.9")
    assert errors == ["it was built with TensorRT for RTX 1.7.1.116 and this is TensorRT for RTX 1.6.1.120"]


@pytest.mark.skipif(not RTX_INSTALLED, reason="TensorRT for RTX is not installed: pip install 'vqa-rt[rtx]'")
def test_a_real_rtx_plan_without_a_gpu_is_one_line_naming_both_sides(qpmap_export, tmp_path, cli):
    from vqa_rt.export.onnx_tools.trt_build import BuildOptions, build_engine
    from vqa_rt.runtime.engines.native.cuda_probe import probe_driver

    driver = probe_driver()
    if driver.gpus:
        pytest.skip("a GPU is visible here")
    plan = str(tmp_path / "qp.plan")
    build_engine(qpmap_export.path, plan, BuildOptions(targets="sm86,sm120"))
    frames = tmp_path / "in.yuv"
    frames.write_bytes(np.random.default_rng(0).integers(0, 256, 2 * 64 * 64 * 3 // 2, dtype=np.uint8).tobytes())
    before = sorted(os.listdir(tmp_path))
    run = cli("qpmap", "--engine", plan, "-i", frames, "-w", 64, "-h", 64, "-o", tmp_path / "qp.npy")
    assert run.returncode == 2
    assert run.stderr.decode().splitlines() == [
        f"vqa-rt: error: {plan}: the plan was built with TensorRT for RTX "
        f"{__import__('tensorrt_rtx_bindings').__version__} for sm86, sm120 and this machine has no usable CUDA GPU "
        f"({driver.error})"]
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.skipif(TENSORRT_IMPORTABLE, reason="TensorRT is importable here")
def test_plan_runner_without_tensorrt_is_a_clear_error(plan_files):
    with pytest.raises(BackendUnavailableError, match="fr.plan: the plan was built with TensorRT 10.13.3.9 for "
                       "sm90: TensorRT is not available"):
        open_runner(resolve_engine(plan_files()))


def test_fr_plans_get_the_gpu_preprocessing_scorer(plan_files, fr_export):
    from vqa_rt.runtime.scorers.factory import scorer_class
    from vqa_rt.runtime.scorers.fr import FRScorer
    from vqa_rt.runtime.scorers.fr_gpu import GpuFRScorer

    plan = resolve_engine(plan_files(), ("fr",))
    assert scorer_class(plan) is GpuFRScorer
    assert scorer_class(resolve_engine(fr_export.path)) is FRScorer
    assert issubclass(GpuFRScorer, FRScorer) and plan.takes_reference


@pytest.mark.skipif(TENSORRT_IMPORTABLE, reason="TensorRT is importable here")
def test_gpu_scorer_without_tensorrt_is_a_clear_error(plan_files, clip):
    from vqa_rt.runtime.frames.options import ScoreOptions
    from vqa_rt.runtime.frames.video import VideoFormat
    from vqa_rt.runtime.scorers.factory import make_scorer

    plan = plan_files()
    fmt = VideoFormat(clip.width, clip.height, 8, None, None, "yuv420p")
    with pytest.raises(BackendUnavailableError, match="TensorRT is not available"):
        make_scorer(resolve_engine(plan), ScoreOptions(), (fmt, fmt))


# ---------------------------------------------------------------- on a GPU

def _require_gpu_stack(flavour, deform) -> str:
    """Skip, naming what is missing: a visible GPU, the TensorRT flavour (and a target of it for this GPU), pycuda,
    the plugin library where the plan needs it. Returns the GPU's target name (``sm89``)."""
    from vqa_rt.runtime.engines.backends.tensorrt import import_pycuda
    from vqa_rt.runtime.engines.backends.trt_flavours import buildable_targets, import_flavour, target_name
    from vqa_rt.runtime.engines.native.cuda_probe import probe_driver
    from vqa_rt.runtime.engines.native.libraries import find_plugin

    driver = probe_driver()
    if not driver.gpus:
        pytest.skip(f"no GPU visible: {driver.error}")
    probes = [lambda: import_flavour(flavour), import_pycuda] + ([find_plugin] if deform == "plugin" else [])
    for probe in probes:
        try:
            probe()
        except BackendUnavailableError as exc:
            pytest.skip(str(exc))
    target = target_name(driver.gpus[0].compute_capability)
    if flavour.ahead_of_time and target not in buildable_targets(import_flavour(flavour)):
        pytest.skip(f"{flavour.name} builds no plan for this GPU ({driver.gpus[0].name}, {target})")
    return target


def _require_builtin_deform_plugin(flavour):
    from vqa_rt.runtime.engines.backends.tensorrt import make_logger
    from vqa_rt.runtime.engines.backends.trt_flavours import import_flavour
    from vqa_rt.runtime.engines.native.libraries import BUILTIN_DEFORM_PLUGIN, register_builtin_plugins

    trt = import_flavour(flavour)
    register_builtin_plugins(trt, make_logger(trt))
    spec = BUILTIN_DEFORM_PLUGIN
    if trt.get_plugin_registry().get_creator(spec.name, spec.version, spec.namespace) is None:
        pytest.skip(f"TensorRT {trt.__version__} registers no {spec.describe()} (libnvinfer_plugin)")


SMALL = dict(min_size=(64, 64), opt_size=(128, 96), max_size=(192, 160), opt_batch=2, max_batch=2)
# name: (flavour, precision, DeformConv handling, targets: "native", or "named" for this GPU's target built ahead of
# time alongside another one); full TensorRT plans share one timing cache
PLAN_BUILDS = {
    "fp32": ("tensorrt", "fp32", "plugin", "native"),
    "fp16": ("tensorrt", "fp16", "plugin", "native"),
    "fp32-builtin": ("tensorrt", "fp32", "builtin", "native"),
    "fp32-decomposed": ("tensorrt", "fp32", "decomposed", "native"),
    "rtx-fp32-plugin": ("rtx", "fp32", "plugin", "native"),
    "rtx-fp32-decomposed": ("rtx", "fp32", "decomposed", "native"),
    "rtx-fp16-decomposed-named": ("rtx", "fp16", "decomposed", "named"),
}


@pytest.fixture(scope="module")
def plans(fr_export, tmp_path_factory):
    """Plans of the exported FR model (small profile) for the GPU at hand, by :data:`PLAN_BUILDS` name; built once,
    lazily."""
    from vqa_rt.export.onnx_tools.trt_build import BuildOptions, build_engine
    from vqa_rt.export.onnx_tools.trt_profile import ShapeRange
    from vqa_rt.runtime.engines.backends.trt_flavours import FLAVOURS

    folder = tmp_path_factory.mktemp("plans")
    cache = str(folder / "timing.cache")
    built = {}

    def get(name):
        if name not in built:
            flavour, precision, deform, targets = PLAN_BUILDS[name]
            target = _require_gpu_stack(FLAVOURS[flavour], deform)
            if deform == "builtin":
                _require_builtin_deform_plugin(FLAVOURS[flavour])
            if targets == "named":
                targets = ",".join(dict.fromkeys([target, "sm86" if target != "sm86" else "sm89"]))
            options = BuildOptions(precision=precision, shapes=ShapeRange(**SMALL), flavour=flavour, targets=targets,
                                   deform=deform, timing_cache=cache if flavour == "tensorrt" else None)
            built[name] = build_engine(fr_export.path, str(folder / f"fr-{name}.plan"), options)
        return built[name]

    return get


def _feed(batch, height, width, seed):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((batch, 3, height, width)).astype(np.float32)
    return {"ref": ref, "dist": ref + 0.3 * rng.standard_normal(ref.shape).astype(np.float32),
            "ref_prev": np.roll(ref, 1, axis=3), "dist_prev": np.roll(ref, 2, axis=2)}


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(PLAN_BUILDS))
def test_plan_matches_onnx_runtime_cpu(plans, fr_export, name):
    from vqa_rt.runtime.engines.backends.onnxrt import OnnxRuntimeRunner
    from vqa_rt.runtime.engines.backends.tensorrt import TensorRTRunner

    report = plans(name)
    tolerance = TOLERANCE[report.sidecar["precision"]]
    flavour, _, deform, targets = PLAN_BUILDS[name]
    plugins = {"builtin": ["ModulatedDeformConv2d"], "plugin": ["VqaDeformConv2d"], "decomposed": []}
    assert [p["name"] for p in report.sidecar["plugins"]] == plugins[deform]
    assert report.sidecar["layers"]["count"] > 0 and report.sidecar["built_without_gpu"] is (targets == "named")
    oracle = OnnxRuntimeRunner(fr_export.path, optimize=False)
    with oracle, TensorRTRunner(report.plan) as runner:
        assert [i.name for i in runner.input_metadata()] == ["ref", "dist", "ref_prev", "dist_prev"]
        assert runner.input_metadata()[0].shape == ("batch", 3, "height", "width")
        for batch, height, width, seed in ((2, 96, 128, 0), (1, 160, 192, 1), (2, 64, 64, 2)):
            feed = _feed(batch, height, width, seed)
            expected, actual = oracle.infer(feed), runner.infer(feed)
            for output in ("score", "spatial", "temporal"):
                assert actual[output].shape == expected[output].shape == (batch,)
                error = np.abs(actual[output] - expected[output]).max() / np.abs(expected[output]).max()
                assert error <= tolerance, f"{name} {output} at {batch}x{height}x{width}: {error:.3g}"
        with pytest.raises(InputError, match="outside the plan's profile"):
            runner.infer(_feed(3, 96, 128, 0))
    if flavour == "rtx":  # what TensorRT for RTX compiled for this GPU at load, kept for the next load
        assert os.path.getsize(runtime_cache_path(report.plan)) > 0


@pytest.mark.gpu
def test_timing_cache_is_written_and_reused(plans):
    first, second = plans("fp32"), plans("fp16")
    assert first.timing_cache and second.timing_cache == first.timing_cache
    assert any("reused timing cache" in note for note in second.notes)
    report = json.loads(Path(first.plan + ".report.json").read_text())
    assert report["layers"]["count"] == first.sidecar["layers"]["count"] and report["tensorrt"]["version"]


@pytest.mark.gpu
def test_plan_from_another_tensorrt_is_refused(plans, tmp_path):
    from vqa_rt.runtime.engines.backends.tensorrt import TensorRTRunner

    report = plans("fp32")
    plan = str(tmp_path / "old.plan")
    shutil.copy(report.plan, plan)
    data = dict(report.sidecar, tensorrt={"flavour": "tensorrt", "version": "9.0.0.1"})
    Path(plan_sidecar_path(plan)).write_text(json.dumps(data))
    with pytest.raises(ModelError, match="built with TensorRT 9.0.0.1 and this is TensorRT .*vqa-rt build-engine"):
        TensorRTRunner(plan)


@pytest.mark.gpu
def test_score_with_a_plan_matches_the_onnx_file(plans, fr_export, clip, cli, tmp_path):
    plan = plans("fp32").plan
    results = {}
    for name, engine in (("onnx", fr_export.path), ("plan", plan)):
        out = tmp_path / f"{name}.json"
        run = cli("score", "--engine", engine, "-r", clip.ref, "-d", clip.dist, "-w", clip.width, "-h", clip.height,
                  "-o", out)
        assert run.returncode == 0, run.stderr.decode()
        results[name] = json.loads(out.read_text())
    assert results["plan"]["model"]["backend"] == "tensorrt-fp32"
    expected = np.array([f["metrics"]["score"] for f in results["onnx"]["frames"]])
    actual = np.array([f["metrics"]["score"] for f in results["plan"]["frames"]])
    assert np.abs(actual - expected).max() / np.abs(expected).max() <= TOLERANCE["fp32"]


def _require_kernel_library():
    from vqa_rt.runtime.engines.native.kernel_library import KernelLibrary

    try:
        return KernelLibrary()
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.mark.gpu
@pytest.mark.parametrize("bit_depth, options", [
    (8, {}),
    (8, {"batch_size": 2, "analysis_size": (131, 77)}),  # enlarge to odd sizes, batches of 2
    (10, {"frame_stride": 2, "matrix": "bt601", "color_range": "full"}),  # ref_prev/dist_prev converted too
    (10, {"batch_size": 2, "frame_stride": 2, "analysis_size": (96, 64)}),  # shrink
], ids=["8bit", "8bit-batch2-enlarge", "10bit-stride2-bt601-full", "10bit-batch2-stride2-shrink"])
def test_score_with_gpu_preprocessing_matches_the_onnx_file_on_the_cpu(plans, fr_export, tmp_path, bit_depth,
                                                                        options):
    from vqa_rt.runtime.frames.options import ScoreOptions
    from vqa_rt.runtime.frames.sources import VideoInput
    from vqa_rt.runtime.frames.synthetic import make_test_clip
    from vqa_rt.runtime.pipeline.score import score

    plan = plans("fp32").plan
    _require_kernel_library()
    ref, dist = str(tmp_path / "ref.yuv"), str(tmp_path / "dist.yuv")
    make_test_clip(ref, dist, 128, 96, 7, seed=5, bit_depth=bit_depth, quality=25)
    pix_fmt = "yuv420p" if bit_depth == 8 else "yuv420p10le"
    videos = [VideoInput(path, 128, 96, pix_fmt) for path in (ref, dist)]
    results = {name: score(engine, *videos, ScoreOptions(**options))
               for name, engine in (("onnx", fr_export.path), ("plan", plan))}
    model = results["plan"]["model"]
    assert model["preprocess"] == "gpu" and model["backend"] == "tensorrt-fp32"
    frames = {name: result["frames"] for name, result in results.items()}
    assert [f["frameNum"] for f in frames["plan"]] == [f["frameNum"] for f in frames["onnx"]]
    for output in ("score", "spatial", "temporal"):
        expected = np.array([f["metrics"][output] for f in frames["onnx"]])
        actual = np.array([f["metrics"][output] for f in frames["plan"]])
        error = np.abs(actual - expected).max() / np.abs(expected).max()
        assert error <= TOLERANCE["fp32"], f"{output}: {error:.3g}"


# ---------------------------------------------------------------- TensorRT without a GPU (bindings only)

def test_a_runtime_that_cannot_start_is_a_clear_error_not_a_crash(tensorrt_bindings, capfd):
    """With TensorRT's own bindings (full or lean runtime) and no GPU: TensorRT reports the CUDA
    failure through ``make_logger``'s logger (printed once as ``[TensorRT] error: ...``) yet returns
    a runtime object, which crashes the process when used or destroyed. ``start_tensorrt`` turns that
    into BackendUnavailableError with TensorRT's message, and the process lives on."""
    import gc

    from vqa_rt.runtime.engines.backends.tensorrt import make_logger, start_tensorrt
    from vqa_rt.runtime.engines.native.cuda_probe import probe_driver

    if probe_driver().gpus:
        pytest.skip("a GPU is visible: TensorRT's runtime starts here")
    trt = tensorrt_bindings
    logger = make_logger(trt)
    for _ in range(2):
        with pytest.raises(BackendUnavailableError, match="could not start its runtime \\(.*CUDA initiali"):
            start_tensorrt(trt, logger)
        gc.collect()
    printed = [line for line in capfd.readouterr().err.splitlines() if line.startswith("[TensorRT]")]
    assert printed and all(line.startswith("[TensorRT] error: ") for line in printed)
    assert printed[0] == f"[TensorRT] error: {logger.errors[0]}"
