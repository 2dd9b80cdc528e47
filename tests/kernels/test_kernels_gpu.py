"""The CUDA kernels on a GPU, through the C ABI (ctypes), against the CPU references:
deformable convolution against ONNX Runtime's DeformConv (FP32 ≤ 1e-5, FP16 ≤ 2e-3
relative L2 error), YUV->RGB against runtime/frames/color.py.

Library: $VQA_KERNELS_LIBRARY, else build/kernels/lib/libvqa_kernels.so (`make
kernels`), else a one-architecture test build (sm_80 with PTX, which runs on any
GPU from sm_80 on). Device memory: torch (CUDA), cupy or pycuda, whichever imports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

REPO = Path(__file__).resolve().parents[2]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _Torch:
    name = "torch"

    def __init__(self):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("torch has no CUDA")
        self.torch = torch

    def to_device(self, array):
        return self.torch.from_numpy(np.ascontiguousarray(array)).cuda()

    def empty(self, shape, dtype):
        return self.to_device(np.zeros(shape, dtype))

    def ptr(self, buffer):
        return buffer.data_ptr()

    def to_host(self, buffer):
        return buffer.cpu().numpy()

    def synchronize(self):
        self.torch.cuda.synchronize()


class _Cupy:
    name = "cupy"

    def __init__(self):
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        self.cupy = cupy

    def to_device(self, array):
        return self.cupy.asarray(np.ascontiguousarray(array))

    def empty(self, shape, dtype):
        return self.cupy.zeros(shape, dtype)

    def ptr(self, buffer):
        return buffer.data.ptr

    def to_host(self, buffer):
        return self.cupy.asnumpy(buffer)

    def synchronize(self):
        self.cupy.cuda.runtime.deviceSynchronize()


class _PyCuda:
    name = "pycuda"

    def __init__(self):
        import pycuda.driver as cuda
        import pycuda.gpuarray as gpuarray

        cuda.init()
        # The primary context: the one the CUDA runtime (and so the library) uses.
        self.context = cuda.Device(0).retain_primary_context()
        self.context.push()
        self.gpuarray = gpuarray

    def to_device(self, array):
        return self.gpuarray.to_gpu(np.ascontiguousarray(array))

    def empty(self, shape, dtype):
        return self.gpuarray.zeros(shape, dtype)

    def ptr(self, buffer):
        return int(buffer.gpudata)

    def to_host(self, buffer):
        return buffer.get()

    def synchronize(self):
        self.context.synchronize()

    def close(self):
        self.context.pop()


@pytest.fixture(scope="module")
def device_memory():
    """torch, cupy or pycuda device buffers; skips naming what is missing."""
    reasons = []
    for adapter in (_Torch, _Cupy, _PyCuda):
        try:
            memory = adapter()
        except Exception as exc:  # ImportError, or a package without a usable GPU
            reasons.append(f"{adapter.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            continue
        yield memory
        if hasattr(memory, "close"):
            memory.close()
        return
    pytest.skip("no GPU array library usable (" + "; ".join(reasons) + ")")


@pytest.fixture()
def run_deform(gpu_kernels, device_memory):
    """Runs the library's deformable conv on the GPU on numpy inputs of one dtype."""

    def run(case, inputs):
        dtype = inputs["x"].dtype
        params = case.params()
        status, need = gpu_kernels.workspace_size(params, dtype.name)
        assert status == 0, gpu_kernels.last_error()
        buffers = {name: None if a is None else device_memory.to_device(a) for name, a in inputs.items()}
        ptrs = {name: None if b is None else device_memory.ptr(b) for name, b in buffers.items()}
        y = device_memory.empty((case.n, case.oc, *case.out_size), dtype)
        workspace = device_memory.empty((need,), np.uint8)
        status = gpu_kernels.deform_conv(params, dtype.name, ptrs["x"], ptrs["weight"], ptrs["offset"], ptrs["mask"],
                                         ptrs["bias"], device_memory.ptr(y), device_memory.ptr(workspace), need)
        assert status == 0, gpu_kernels.last_error()
        device_memory.synchronize()
        return device_memory.to_host(y)

    return run


def test_deform_conv_fp32_matches_onnxruntime(run_deform, deform_case, deform_oracle, rel_err):
    inputs = deform_case.inputs(seed=11)
    expected = deform_oracle(deform_case, inputs)
    actual = run_deform(deform_case, inputs)
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    assert rel_err(actual, expected) <= 1e-5


def test_deform_conv_fp16_matches_onnxruntime(run_deform, deform_case, deform_oracle, rel_err, fp16_inputs):
    half, reference_inputs = fp16_inputs(deform_case.inputs(seed=12))
    expected = deform_oracle(deform_case, reference_inputs)
    actual = run_deform(deform_case, half)
    assert actual.dtype == np.float16 and np.isfinite(actual).all()
    assert rel_err(actual, expected) <= 2e-3


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_fr_scale_problem_with_split_k_is_right_and_deterministic(run_deform, make_deform_case, deform_oracle,
                                                                  rel_err, fp16_inputs, dtype):
    # The FR model's deepest fusion at 960x540: 2x512 channels at 1/32 scale, 64 out,
    # offset_group 2: few output tiles, a long K, so the launcher splits K.
    case = make_deform_case("fr-stage4", 1, 1024, 17, 30, 64, offset_group=2)
    inputs = case.inputs(seed=5)
    if dtype == "float16":
        inputs, reference_inputs = fp16_inputs(inputs)
    else:
        reference_inputs = inputs
    expected = deform_oracle(case, reference_inputs)
    first, second = run_deform(case, inputs), run_deform(case, inputs)
    assert rel_err(first, expected) <= (1e-5 if dtype == "float32" else 2e-3)
    assert np.array_equal(first, second), "split-K reduction must be deterministic"


@pytest.fixture()
def run_yuv(gpu_kernels, device_memory, make_yuv_params):
    def run(frame, matrix, color_range, size, dtype="float32", row_padding=0):
        height, width = frame.y.shape
        params = make_yuv_params(width, height, frame.bit_depth, matrix, color_range, size, MEAN, STD, dtype)
        planes = []
        for plane in (frame.y, frame.u, frame.v):
            if row_padding:
                plane = np.pad(plane, ((0, 0), (0, row_padding)))
            planes.append(device_memory.to_device(plane))
        if row_padding:
            item = frame.y.itemsize
            params.y_pitch = (width + row_padding) * item
            params.uv_pitch = (frame.u.shape[1] + row_padding) * item
        out_w, out_h = size or (width, height)
        out = device_memory.empty((3, out_h, out_w), np.dtype(dtype))
        status = gpu_kernels.yuv420_to_rgb(params, *(device_memory.ptr(p) for p in planes), device_memory.ptr(out))
        assert status == 0, gpu_kernels.last_error()
        device_memory.synchronize()
        return device_memory.to_host(out)

    return run


YUV_SIZES = {"none": None, "enlarge-1.5x": (144, 108), "enlarge-2x": (192, 144), "enlarge-odd": (131, 77),
             "shrink-area": (60, 45), "shrink-mixed": (120, 30)}


@pytest.mark.parametrize("size", list(YUV_SIZES.values()), ids=list(YUV_SIZES))
@pytest.mark.parametrize("bit_depth,matrix,color_range", [(8, "bt709", "limited"), (10, "bt601", "full"),
                                                          (10, "bt709", "limited")])
def test_yuv_to_rgb_fp32_matches_color_py(run_yuv, yuv_frame, size, bit_depth, matrix, color_range):
    from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb

    frame = yuv_frame(96, 72, bit_depth, seed=bit_depth)
    expected = normalize(yuv_to_rgb(frame, matrix, color_range, size), MEAN, STD)
    actual = run_yuv(frame, matrix, color_range, size)
    assert actual.shape == expected.shape
    # OpenCV's SIMD linear resize differs from its own scalar code by ~2e-6 (on
    # [0, 1]); the bound is 1e-5 of the normalised values' range.
    assert np.abs(actual - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


def test_yuv_to_rgb_pitched_planes_and_fp16_output(run_yuv, yuv_frame):
    from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb

    frame = yuv_frame(96, 72, 10, seed=3)
    expected = normalize(yuv_to_rgb(frame, "bt709", "limited", (128, 96)), MEAN, STD)
    pitched = run_yuv(frame, "bt709", "limited", (128, 96), row_padding=13)
    assert np.abs(pitched - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())
    half = run_yuv(frame, "bt709", "limited", (128, 96), dtype="float16")
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), expected, rtol=2 ** -10, atol=2 ** -10)
