"""The kernel library builds with CMake (one architecture, warnings as errors), loads
with ctypes, reports its version, and fails cleanly without a GPU. The kernels' own
tiling and per-pixel code, run on the CPU by the host emulation, match the ONNX
Runtime DeformConv oracle and runtime/frames/color.py (this checks the algorithms, not the
GPU-only parts: WMMA fragments, register tiles, launches). With $TENSORRT_ROOT
(headers suffice), the plugin library is also driven the way TensorRT drives it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TEST_ARCH = "80"
FAKE_DEVICE_POINTER = 0x7F0000000000  # never dereferenced: the calls fail before any launch


def test_configure_without_tensorrt_skips_the_plugin_with_a_message(kernel_build, tmp_path, cmake_configure):
    log = kernel_build.configure_log
    if kernel_build.with_plugin:  # the shared build has TensorRT: configure once more without it
        configure = cmake_configure(REPO, tmp_path, f"-DCMAKE_CUDA_ARCHITECTURES={TEST_ARCH}")
        assert configure.returncode == 0, configure.stderr
        log = configure.stdout + configure.stderr
    assert "TensorRT plugin (vqa_trt_plugin) skipped" in log and "-DTENSORRT_ROOT" in log


def test_tensorrt_plugin_behaves_as_tensorrt_expects(kernel_build):
    """The plugin library driven as TensorRT drives it (kernels/testing/plugin_check.cpp),
    without TensorRT's libraries; needs only the headers."""
    if not kernel_build.with_plugin:
        pytest.skip("TensorRT headers not found: set TENSORRT_ROOT to a TensorRT root with include/NvInferRuntime.h")
    import subprocess

    run = subprocess.run([str(kernel_build.plugin_check), str(kernel_build.plugin)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failure(s)" in run.stdout


def test_version_and_build_info(kernels):
    from importlib.metadata import version

    assert re.fullmatch(r"\d+\.\d+\.\d+", kernels.version())
    assert kernels.version() == version("vqa-rt").split("+")[0]
    assert kernels.lib.vqa_kernels_abi_version() == 1
    info = kernels.build_info()
    assert kernels.version() in info and "architectures 80" in info and "CUDA 13" in info
    assert kernels.lib.vqa_status_name(2).decode() == "VQA_ERROR_NO_DEVICE"


def _has_gpu(kernels) -> bool:
    status, count = kernels.device_count_status()
    return status == 0 and count > 0


def test_without_a_gpu_calls_fail_with_a_clean_error(kernels, make_deform_case, make_yuv_params):
    if _has_gpu(kernels):
        pytest.skip("a GPU is visible: the no-GPU error path cannot be exercised here")
    status, count = kernels.device_count_status()
    assert (status, count) == (2, 0)
    assert kernels.last_error()

    params = make_deform_case("small", 1, 4, 8, 8, 4).params()
    status, size = kernels.workspace_size(params, "float32")
    assert status == 0 and size > 0  # sizing needs no GPU
    fake = FAKE_DEVICE_POINTER
    status = kernels.deform_conv(params, "float32", fake, fake, fake, fake, fake, fake, fake, size)
    assert status == 2, kernels.last_error()
    message = kernels.last_error()
    assert message.startswith("vqa_deform_conv_forward: cuda") and "no usable CUDA device or driver" in message

    status = kernels.yuv420_to_rgb(make_yuv_params(64, 48), fake, fake, fake, fake)
    assert status == 2 and "vqa_yuv420_to_rgb" in kernels.last_error()

    # A successful call clears the message.
    assert kernels.workspace_size(params, "float16")[0] == 0 and kernels.last_error() == ""


def test_invalid_arguments_are_reported_before_any_cuda_call(kernels, make_deform_case):
    fake = FAKE_DEVICE_POINTER
    bad_group = make_deform_case("bad-group", 1, 6, 8, 8, 4, group=4).params()
    status = kernels.deform_conv(bad_group, "float32", fake, fake, fake, 0, 0, fake, fake, 1 << 30)
    assert status == 1 and "not divisible by group 4" in kernels.last_error()

    params = make_deform_case("ok", 1, 4, 8, 8, 4).params()
    params.out_height = 7  # offset spatial size inconsistent with the input and attributes
    assert kernels.workspace_size(params, "float32")[0] == 1
    assert "differs from 8x8" in kernels.last_error()

    params.out_height = 8
    _, need = kernels.workspace_size(params, "float32")
    status = kernels.deform_conv(params, "float32", fake, fake, fake, 0, 0, fake, fake, need - 1)
    assert status == 1 and f"{need} needed" in kernels.last_error()
    status = kernels.deform_conv(params, "float32", fake, 0, fake, 0, 0, fake, fake, need)
    assert status == 1 and "must be non-NULL" in kernels.last_error()
    status = kernels.lib.vqa_deform_conv_forward(params, 7, fake, fake, fake, 0, 0, fake, fake, need, 0)
    assert status == 1 and "unknown dtype" in kernels.last_error()


def test_workspace_size_never_shrinks_when_a_dimension_grows(kernels, make_deform_case):
    base = make_deform_case("base", 1, 16, 20, 20, 32)
    _, size = kernels.workspace_size(base.params(), "float16")
    for grown in (make_deform_case("n", 4, 16, 20, 20, 32), make_deform_case("hw", 1, 16, 60, 80, 32),
                  make_deform_case("c", 1, 64, 20, 20, 32), make_deform_case("oc", 1, 16, 20, 20, 256)):
        status, bigger = kernels.workspace_size(grown.params(), "float16")
        assert status == 0 and bigger >= size, grown.name
    assert kernels.workspace_size(base.params(), "float32")[1] >= size


# ---------------------------------------------------------------- host emulation of the kernels' code

@pytest.mark.parametrize("sm_count", [1, 132], ids=["one-sm", "h100-split-k"])
def test_emulated_deform_conv_fp32_matches_onnxruntime(emulation, deform_case, deform_oracle, rel_err, sm_count):
    inputs = deform_case.inputs(seed=sum(map(ord, deform_case.name)))
    expected = deform_oracle(deform_case, inputs)
    actual, splits = emulation.deform_conv(deform_case.params(), **inputs, sm_count=sm_count)
    assert actual.shape == expected.shape
    assert rel_err(actual, expected) <= 1e-5, f"splits={splits}"
    assert np.isfinite(actual).all()


def test_emulated_split_k_plan(emulation, make_deform_case):
    deep = make_deform_case("deep", 1, 96, 5, 6, 8)  # one output tile, 27 K-steps
    assert emulation.deform_conv(deep.params(), **deep.inputs(), sm_count=132)[1] == 6  # >= 4 K-steps per split
    assert emulation.deform_conv(deep.params(), **deep.inputs(), sm_count=1)[1] == 2  # two blocks per SM
    wide = make_deform_case("wide", 2, 8, 40, 40, 8)  # 50 output tiles
    assert emulation.deform_conv(wide.params(), **wide.inputs(), sm_count=8)[1] == 1


def test_emulated_deform_conv_fp16_matches_onnxruntime(emulation, deform_case, deform_oracle, rel_err, fp16_inputs):
    half, reference_inputs = fp16_inputs(deform_case.inputs(seed=1))
    expected = deform_oracle(deform_case, reference_inputs)
    actual, _ = emulation.deform_conv(deform_case.params(), **half, sm_count=132)
    assert actual.dtype == np.float16
    assert rel_err(actual, expected) <= 2e-3


YUV_SIZES = {
    "none": None,
    "enlarge-1.5x": (96, 72),
    "enlarge-2x": (128, 96),
    "enlarge-odd": (101, 53),
    "grow-one-axis-linear": (100, 40),  # more pixels overall: INTER_LINEAR, height shrinks
    "shrink-2x-area": (32, 24),
    "shrink-1.6x-area": (40, 30),
    "shrink-odd-area": (37, 29),
    "shrink-mixed-area-linear": (80, 20),  # fewer pixels, width grows: OpenCV's INTER_AREA fallback
}


@pytest.mark.parametrize("size", list(YUV_SIZES.values()), ids=list(YUV_SIZES))
@pytest.mark.parametrize("bit_depth,matrix,color_range", [(8, "bt709", "limited"), (10, "bt601", "full"),
                                                          (10, "bt709", "limited"), (8, "bt601", "full")])
def test_emulated_yuv_to_rgb_matches_color_py(emulation, yuv_frame, make_yuv_params, size, bit_depth, matrix,
                                               color_range):
    from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    frame = yuv_frame(64, 48, bit_depth, seed=bit_depth)
    expected = normalize(yuv_to_rgb(frame, matrix, color_range, size), mean, std)
    params = make_yuv_params(64, 48, bit_depth, matrix, color_range, size, mean, std)
    actual = emulation.yuv420_to_rgb(params, frame.y, frame.u, frame.v)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


def test_emulated_yuv_to_rgb_fp16_output(emulation, yuv_frame, make_yuv_params):
    from vqa_rt.runtime.frames.color import yuv_to_rgb

    frame = yuv_frame(64, 48)
    expected = yuv_to_rgb(frame, "bt709", "limited", (96, 72))
    actual = emulation.yuv420_to_rgb(make_yuv_params(64, 48, size=(96, 72), dtype="float16"), frame.y, frame.u,
                                     frame.v)
    assert actual.dtype == np.float16
    np.testing.assert_allclose(actual.astype(np.float32), expected, atol=2 ** -11, rtol=0)
