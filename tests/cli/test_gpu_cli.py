"""``vqa-rt doctor``, ``vqa-rt build-engine`` and ``vqa-rt inspect`` of the plan as a user runs them (TensorRT for
RTX builds without a GPU), and a ``.plan`` engine given to ``score`` where its TensorRT is absent: one line on
stderr, exit 2."""

from __future__ import annotations

import importlib.util
import json

import onnx
import pytest

from vqa_rt.runtime.engines.metadata import PLAN_FORMAT, PLAN_FORMAT_VERSION, onnx_metadata
from vqa_rt.runtime.engines.native.cuda_probe import probe_driver

TENSORRT_IMPORTABLE = importlib.util.find_spec("tensorrt") is not None
RTX_INSTALLED = importlib.util.find_spec("tensorrt_rtx_bindings") is not None
FINDINGS = ("vqa-rt", "GPU", "CUDA driver", "nvidia-smi", "CUDA runtime", "TensorRT", "TensorRT for RTX", "pycuda",
            "TensorRT plugin", "kernel library", "ONNX Runtime")


def test_doctor_reports_every_probe_and_exits_0(cli):
    result = cli("doctor")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert [line.split("  [")[0].strip() for line in lines] == list(FINDINGS)
    assert all("(probed: " in line for line in lines)
    by_name = {line.split("  [")[0].strip(): line for line in lines}
    assert "CPUExecutionProvider" in by_name["ONNX Runtime"] and "not a device probe" in by_name["ONNX Runtime"]
    if not TENSORRT_IMPORTABLE:
        assert "[missing]  TensorRT is not available" in by_name["TensorRT"]
    if RTX_INSTALLED:
        assert "[ok]" in by_name["TensorRT for RTX"] and "builds ahead of time, no GPU needed, for sm75, sm80" in \
            by_name["TensorRT for RTX"]
    if not probe_driver().gpus:  # this machine: no driver, so no GPU, said as such
        assert "[missing]  none (" in by_name["GPU"]


def test_doctor_json(cli):
    result = cli("doctor", "--json")
    assert result.returncode == 0
    findings = json.loads(result.stdout)
    assert [f["name"] for f in findings if f["name"] != "TensorRT plugin"] == [
        name for name in FINDINGS if name != "TensorRT plugin"]  # one plugin finding per flavour found
    assert all(set(f) == {"name", "status", "value", "probe"} for f in findings)
    assert {f["status"] for f in findings} <= {"ok", "missing", "info"}


@pytest.mark.skipif(not RTX_INSTALLED, reason="TensorRT for RTX is not installed: pip install 'vqa-rt[rtx]'")
def test_build_engine_for_named_targets_then_inspect_the_plan(cli, qpmap_export, tmp_path):
    plan = tmp_path / "qp.plan"
    result = cli("build-engine", qpmap_export.path, "--output", plan, "--target", "sm86,sm89", "--precision", "fp16",
                 "--max-size", "1920x1080")
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith(f"built {plan} in ") and "TensorRT for RTX" in lines[0]
    assert "fp16, for sm86, sm89, ahead of time (no GPU used)" in lines[0]
    assert lines[1] == "graph: converted to FP16 (inputs and outputs FP32)"
    assert lines[2] == "profile: rgb [1..1..4]x3x[360..1080..1080]x[640..1920..1920]"
    assert lines[-1] == f"wrote {plan}, {plan}.json, {plan}.report.json"
    assert result.stderr == b""
    shown = cli("inspect", plan)
    assert shown.returncode == 0, shown.stderr.decode()
    text = shown.stdout.decode().splitlines()
    assert "plan: fp16, TensorRT for RTX" in text[1] and "for sm86, sm89 (built ahead of time, without a GPU" in text[1]
    assert text[2].startswith("layers: ") and "with FP16 outputs" in text[2]


@pytest.mark.skipif(probe_driver().gpus, reason="a GPU is visible: build-engine builds for it by default")
def test_build_engine_without_gpu_or_target_is_one_line_and_exit_2(cli, fr_export, tmp_path):
    result = cli("build-engine", fr_export.path, "--output", tmp_path / "fr.plan", "--precision", "fp16")
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqa-rt: error: building without --target needs a visible NVIDIA "
                                                   "GPU and there is none")
    assert "--target sm80,sm86,sm89,sm120" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_build_engine_rejects_bad_requests_before_tensorrt(cli, fr_export, tmp_path):
    cases = [
        (["--precision", "int8"], "needs an explicitly quantized graph"),
        (["--min-size", "32x32"], "minimum height 32 is below the model's minimum frame size of 64"),
        (["--opt-batch", "8"], "batch range must satisfy 1 <= min <= opt <= max"),
    ]
    for options, message in cases:
        result = cli("build-engine", fr_export.path, "-o", tmp_path / "fr.plan", *options)
        assert result.returncode == 2 and message in result.stderr.decode(), result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(TENSORRT_IMPORTABLE, reason="TensorRT is importable here")
def test_scoring_with_a_plan_without_tensorrt_is_one_line_and_exit_2(cli, fr_export, clip, tmp_path):
    # The .plan holds placeholder bytes, not an engine: TensorRT is looked for before they are read.
    plan = tmp_path / "fr.plan"
    plan.write_bytes(b"placeholder bytes, not a TensorRT engine")
    metadata = onnx_metadata(onnx.load(fr_export.path, load_external_data=False))
    (tmp_path / "fr.plan.json").write_text(json.dumps(
        {"format": PLAN_FORMAT, "format_version": PLAN_FORMAT_VERSION, "metadata": metadata, "plugins": []}))
    out = tmp_path / "scores.json"
    result = cli("score", "--engine", plan, "-r", clip.ref, "-d", clip.dist, "-w", clip.width, "-h", clip.height,
                 "-o", out)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"vqa-rt: error: {plan}: the plan was built with TensorRT an unknown version: TensorRT "
                               "is not available"), lines
    assert not out.exists()
