"""Shared by the kernel tests: a one-architecture CMake build of the kernels, libvqa_kernels
through the runtime's binding (vqa_rt.runtime.engines.native.kernel_library) with calls returning status codes,
the host emulation's binding, the deformable-conv test cases and the ONNX Runtime ``DeformConv``
oracle."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vqa_rt.runtime.engines.native.kernel_library import (
    DTYPES,
    STATUS_NAMES,
    DeformConvParams,
    KernelLibrary,
    YuvToRgbParams as YuvParams,
    deform_conv_params,
    yuv_to_rgb_params,
)

REPO = Path(__file__).resolve().parents[2]
TEST_ARCH = "80"  # one architecture keeps the test build short

STATUS = STATUS_NAMES

def yuv_params(width, height, bit_depth=8, matrix="bt709", color_range="limited", size=None,
               mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), dtype="float32") -> YuvParams:
    return yuv_to_rgb_params(width, height, bit_depth, matrix, color_range, size, mean, std, dtype)


_P = ctypes.c_void_p


class KernelLib(KernelLibrary):
    """The runtime's :class:`KernelLibrary` with calls that return the C ABI's status codes instead of
    raising, so the tests can check each status; pointer arguments are plain integers (device addresses)."""

    def device_count_status(self) -> tuple[int, int]:
        count = ctypes.c_int32(-1)
        status = self.lib.vqa_device_count(ctypes.byref(count))
        return status, count.value

    def workspace_size(self, params: DeformConvParams, dtype: str) -> tuple[int, int]:
        size = ctypes.c_uint64(0)
        status = self.lib.vqa_deform_conv_workspace_size(ctypes.byref(params), DTYPES[dtype], ctypes.byref(size))
        return status, size.value

    def deform_conv(self, params, dtype, x, weight, offset, mask, bias, y, workspace, workspace_bytes, stream=0):
        return self.lib.vqa_deform_conv_forward(ctypes.byref(params), DTYPES[dtype], x, weight, offset, mask, bias,
                                                y, workspace, workspace_bytes, stream)

    def yuv420_to_rgb(self, params, y, u, v, out, stream=0):
        return self.lib.vqa_yuv420_to_rgb(ctypes.byref(params), y, u, v, out, stream)


def _ptr(array: np.ndarray | None):
    return None if array is None else array.ctypes.data_as(ctypes.c_void_p)


class EmulationLib:
    """libvqa_kernels_emulation.so: the kernels' tiling code run on the CPU, on numpy arrays."""

    def __init__(self, path: str):
        lib = self.lib = ctypes.CDLL(path)
        lib.vqa_emulate_deform_conv_forward.argtypes = [ctypes.POINTER(DeformConvParams), ctypes.c_int32,
                                                        _P, _P, _P, _P, _P, _P, ctypes.c_int32,
                                                        ctypes.POINTER(ctypes.c_int32)]
        lib.vqa_emulate_deform_conv_forward.restype = ctypes.c_int32
        lib.vqa_emulate_yuv420_to_rgb.argtypes = [ctypes.POINTER(YuvParams), _P, _P, _P, _P]
        lib.vqa_emulate_yuv420_to_rgb.restype = ctypes.c_int32

    def deform_conv(self, params, x, weight, offset, mask, bias, sm_count):
        """Returns (y, number of K splits used); arrays must share one dtype."""
        dtype = x.dtype.name
        arrays = [None if a is None else np.ascontiguousarray(a, dtype=x.dtype)
                  for a in (x, weight, offset, mask, bias)]
        y = np.empty((params.batch, params.out_channels, params.out_height, params.out_width), x.dtype)
        splits = ctypes.c_int32(0)
        status = self.lib.vqa_emulate_deform_conv_forward(ctypes.byref(params), DTYPES[dtype], *map(_ptr, arrays),
                                                          _ptr(y), sm_count, ctypes.byref(splits))
        assert status == 0, STATUS.get(status)
        return y, splits.value

    def yuv420_to_rgb(self, params, y, u, v):
        width, height = (params.out_width, params.out_height) if params.out_width else (params.width, params.height)
        out = np.empty((3, height, width), np.float16 if params.out_dtype == 1 else np.float32)
        planes = [np.ascontiguousarray(p) for p in (y, u, v)]
        status = self.lib.vqa_emulate_yuv420_to_rgb(ctypes.byref(params), *map(_ptr, planes), _ptr(out))
        assert status == 0, STATUS.get(status)
        return out


def find_nvcc() -> str | None:
    candidates = [os.environ.get("CUDACXX"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def tensorrt_include_dir() -> Path | None:
    """TensorRT headers named by $TENSORRT_ROOT (the plugin is built only then)."""
    root = os.environ.get("TENSORRT_ROOT")
    if root and (Path(root) / "include" / "NvInferRuntime.h").exists():
        return Path(root) / "include"
    return None


@dataclass
class KernelBuild:
    build_dir: Path
    configure_log: str
    tensorrt_include: Path | None  # the TensorRT headers the plugin was built against (None: not built)

    @property
    def with_plugin(self) -> bool:
        return self.tensorrt_include is not None

    @property
    def kernels(self) -> Path:
        return self.build_dir / "lib" / "libvqa_kernels.so"

    @property
    def emulation(self) -> Path:
        return self.build_dir / "lib" / "libvqa_kernels_emulation.so"

    @property
    def plugin(self) -> Path:
        return self.build_dir / "lib" / "libvqa_trt_plugin.so"

    @property
    def plugin_check(self) -> Path:
        return self.build_dir / "bin" / "vqa_trt_plugin_check"


def cmake_configure(source: Path, build: Path, *options: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TENSORRT_ROOT"}
    return subprocess.run([shutil.which("cmake"), "-S", str(source), "-B", str(build), *options],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="session")
def kernel_build(tmp_path_factory) -> KernelBuild:
    """The kernel library and the test helpers (host emulation; the plugin and its
    check when $TENSORRT_ROOT has TensorRT headers), configured and built with CMake
    for one GPU architecture (sm_80), warnings as errors."""
    cmake, nvcc = shutil.which("cmake"), find_nvcc()
    missing = [name for name, path in (("cmake", cmake), ("nvcc (CUDA toolkit)", nvcc)) if not path]
    if missing:
        pytest.skip(f"cannot build the kernels: {' and '.join(missing)} not found")
    build = tmp_path_factory.mktemp("kernels-build")
    trt = tensorrt_include_dir()
    options = [f"-DCMAKE_CUDA_COMPILER={nvcc}", f"-DCMAKE_CUDA_ARCHITECTURES={TEST_ARCH}",
               "-DVQA_KERNELS_WERROR=ON", "-DVQA_KERNELS_BUILD_TESTING=ON"]
    if trt:
        options.append(f"-DTensorRT_INCLUDE_DIR={trt}")
    configure = cmake_configure(REPO, build, *options)
    if configure.returncode:
        pytest.fail(f"cmake configure failed:\n{configure.stdout[-3000:]}\n{configure.stderr[-3000:]}")
    targets = ["vqa_kernels", "vqa_kernels_emulation"] + (["vqa_trt_plugin", "vqa_trt_plugin_check"] if trt else [])
    compile_ = subprocess.run([cmake, "--build", str(build), "-j2", "--target", *targets],
                              capture_output=True, text=True, timeout=900)
    if compile_.returncode:
        pytest.fail(f"kernel build failed:\n{compile_.stdout[-4000:]}\n{compile_.stderr[-4000:]}")
    return KernelBuild(build, configure.stdout + configure.stderr, trt)


@pytest.fixture(scope="session")
def kernels(kernel_build) -> KernelLib:
    return KernelLib(str(kernel_build.kernels))


@pytest.fixture(scope="session")
def emulation(kernel_build) -> EmulationLib:
    return EmulationLib(str(kernel_build.emulation))


# ---------------------------------------------------------------- deformable convolution cases

@dataclass(frozen=True)
class DeformCase:
    """One DeformConv problem; pads are (top, left, bottom, right)."""

    name: str
    n: int
    c: int
    h: int
    w: int
    oc: int
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (1, 1, 1, 1)
    dilation: tuple[int, int] = (1, 1)
    group: int = 1
    offset_group: int = 1
    offset_scale: float = 3.0  # std of the offsets, in pixels
    mask: bool = True
    bias: bool = True

    @property
    def out_size(self) -> tuple[int, int]:
        params = self.params()
        return params.out_height, params.out_width

    def params(self) -> DeformConvParams:
        return deform_conv_params((self.n, self.c, self.h, self.w), (self.oc, self.c // self.group, *self.kernel),
                                  self.stride, self.pads, self.dilation, self.group, self.offset_group)

    def inputs(self, seed: int = 0) -> dict[str, np.ndarray | None]:
        """Fresh float32 inputs: x, weight, offset, mask (or None), bias (or None)."""
        rng = np.random.default_rng(seed)
        oh, ow = self.out_size
        taps = self.kernel[0] * self.kernel[1]
        x = rng.standard_normal((self.n, self.c, self.h, self.w), np.float32)
        weight = rng.standard_normal((self.oc, self.c // self.group, *self.kernel), np.float32)
        offset = (self.offset_scale * rng.standard_normal((self.n, self.offset_group * taps * 2, oh, ow))).astype(
            np.float32)
        # Some exactly integer offsets: taps landing on pixel centres and borders.
        offset.reshape(-1)[::7] = np.round(offset.reshape(-1)[::7])
        mask = rng.random((self.n, self.offset_group * taps, oh, ow), np.float32) if self.mask else None
        bias = rng.standard_normal(self.oc, np.float32) if self.bias else None
        return {"x": x, "weight": weight, "offset": offset, "mask": mask, "bias": bias}


DEFORM_CASES = [
    DeformCase("groups", 2, 4, 7, 9, 6, group=2, offset_group=2),
    DeformCase("stride2-dil2-og3", 1, 6, 8, 5, 4, stride=(2, 2), dilation=(2, 2), offset_group=3),
    DeformCase("asym-pads", 1, 3, 9, 7, 2, pads=(2, 0, 1, 1)),
    DeformCase("wide-ocg-large-offsets", 2, 16, 13, 11, 70, offset_group=2, offset_scale=8.0),
    DeformCase("og-splits-group", 1, 12, 10, 11, 9, group=3, offset_group=2),
    DeformCase("rect-kernel-odd", 1, 5, 6, 7, 3, kernel=(2, 3), pads=(0, 1, 1, 0), offset_group=5),
    DeformCase("deep-k-small-n", 1, 96, 5, 6, 8, stride=(1, 2), pads=(1, 1, 1, 1), offset_group=2),
    DeformCase("no-mask-no-bias", 2, 8, 9, 10, 16, stride=(2, 1), dilation=(1, 2), pads=(2, 2, 2, 2), mask=False,
               bias=False),
    DeformCase("1x1", 1, 2, 6, 6, 2, kernel=(1, 1), pads=(0, 0, 0, 0), offset_scale=0.7),
    DeformCase("fr-like", 2, 64, 17, 23, 64, offset_group=2),
]


def pytest_generate_tests(metafunc):
    if "deform_case" in metafunc.fixturenames:
        metafunc.parametrize("deform_case", DEFORM_CASES, ids=[case.name for case in DEFORM_CASES])


def ort_deform_conv(case: DeformCase, inputs: dict[str, np.ndarray | None]) -> np.ndarray:
    """The oracle: one ONNX ``DeformConv`` node (opset 19) on ONNX Runtime CPU, float32,
    graph optimisation off."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    names = ["x", "weight", "offset", "bias", "mask"]
    present = {name: inputs[name] for name in names if inputs[name] is not None}
    node = helper.make_node(
        "DeformConv", [name if name in present else "" for name in names], ["y"],
        dilations=list(case.dilation), group=case.group, offset_group=case.offset_group, pads=list(case.pads),
        strides=list(case.stride), kernel_shape=list(case.kernel),
    )
    graph = helper.make_graph(
        [node], "deform_conv",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, array.shape) for name, array in present.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (case.n, case.oc, *case.out_size))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {name: np.ascontiguousarray(array, np.float32) for name, array in present.items()}
    return session.run(["y"], feed)[0]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """||actual - expected||_2 / ||expected||_2, in float64."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-30))


def half_rounded(inputs: dict[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
    """The inputs rounded to float16 (what the FP16 path sees)."""
    return {name: None if a is None else a.astype(np.float16) for name, a in inputs.items()}


def as_float32(inputs: dict[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
    return {name: None if a is None else a.astype(np.float32) for name, a in inputs.items()}


@pytest.fixture(scope="session")
def deform_oracle():
    return ort_deform_conv


@pytest.fixture(scope="session")
def rel_err():
    return relative_error


@pytest.fixture(scope="session")
def fp16_inputs():
    """(float16 inputs, the same values as float32 for the oracle)."""

    def convert(inputs):
        half = half_rounded(inputs)
        return half, as_float32(half)

    return convert


# ---------------------------------------------------------------- YUV frames

@pytest.fixture(scope="session")
def yuv_frame():
    """A random planar 4:2:0 frame as a vqa_rt Frame (codes span the whole range,
    so clipping and out-of-gamut colours are exercised)."""
    from vqa_rt.runtime.frames.video import Frame

    def make(width, height, bit_depth=8, seed=0):
        rng = np.random.default_rng(seed)
        dtype = np.uint8 if bit_depth == 8 else np.uint16
        top = (1 << bit_depth) - 1
        y = rng.integers(0, top + 1, (height, width)).astype(dtype)
        u = rng.integers(0, top + 1, ((height + 1) // 2, (width + 1) // 2)).astype(dtype)
        v = rng.integers(0, top + 1, ((height + 1) // 2, (width + 1) // 2)).astype(dtype)
        return Frame(0, y, u, v, bit_depth)

    return make


@pytest.fixture(scope="session", name="cmake_configure")
def cmake_configure_fixture():
    """cmake_configure(source, build_dir, *options), without $TENSORRT_ROOT in the environment."""
    return cmake_configure


@pytest.fixture(scope="session")
def make_deform_case():
    """DeformCase(name, n, c, h, w, oc, ...) for tests that build their own problem."""
    return DeformCase


@pytest.fixture(scope="session")
def make_yuv_params():
    """yuv_params(width, height, bit_depth, matrix, color_range, size, mean, std, dtype)."""
    return yuv_params


# ---------------------------------------------------------------- GPU

def cuda_driver_devices() -> tuple[int, str]:
    """(number of CUDA devices, why 0) from the driver API, without any vqa-rt library."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0, "no CUDA driver (libcuda.so.1 cannot be loaded)"
    status = driver.cuInit(0)
    if status != 0:
        return 0, f"cuInit failed with CUresult {status}"
    count = ctypes.c_int(0)
    status = driver.cuDeviceGetCount(ctypes.byref(count))
    if status != 0 or count.value == 0:
        return 0, f"no CUDA device visible (cuDeviceGetCount: CUresult {status}, count {count.value})"
    return count.value, ""


@pytest.fixture(scope="session")
def kernels_library_path(request) -> str:
    """Path of a libvqa_kernels.so: $VQA_KERNELS_LIBRARY, else build/kernels/lib (`make kernels`),
    else the one-architecture test build (`kernel_build`). Skips when none can be had."""
    path = os.environ.get("VQA_KERNELS_LIBRARY")
    default = REPO / "build" / "kernels" / "lib" / "libvqa_kernels.so"
    if not path and default.exists():
        path = str(default)
    if not path:
        cmake, nvcc = shutil.which("cmake"), find_nvcc()
        if not (cmake and nvcc):
            pytest.skip("libvqa_kernels.so not built (run `make kernels` or set VQA_KERNELS_LIBRARY) and "
                        "cmake/nvcc are missing to build it here")
        path = str(request.getfixturevalue("kernel_build").kernels)
    return path


@pytest.fixture(scope="session")
def gpu_kernels(request) -> KernelLib:
    """libvqa_kernels (as `kernels_library_path` finds it) on a visible GPU. Skips without a GPU."""
    count, why = cuda_driver_devices()
    if not count:
        pytest.skip(f"no GPU visible: {why}")
    path = request.getfixturevalue("kernels_library_path")
    lib = KernelLib(path)
    status, devices = lib.device_count_status()
    if status != 0 or devices == 0:
        pytest.skip(f"no GPU visible to {path}: {lib.last_error()}")
    return lib
