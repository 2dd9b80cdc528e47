"""GPU pre-processing (vqa_rt.runtime.gpu_preprocess): the ctypes binding of libvqa_kernels'
YUV -> RGB entry against the C header (layout and constants, via the system C compiler), its
errors without a GPU, and on a GPU (pycuda) GpuYuvConverter against runtime/color.py (FP32 max
abs error <= 1e-5 of the values' range) on fresh random 8- and 10-bit frames of odd sizes, with
and without resize. The plan scored end to end with GPU pre-processing is in
tests/runtime/test_tensorrt_runner.py."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vqa_rt.errors import BackendUnavailableError, InputError
from vqa_rt.runtime import gpu_preprocess as gp
from vqa_rt.runtime.video import Frame

REPO = Path(__file__).resolve().parents[2]
HEADER_DIR = REPO / "kernels" / "capi"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FAKE_DEVICE_POINTER = 0x7F0000000000  # never dereferenced: the calls fail before any launch

_LAYOUT_PROGRAM = r"""
#include <stddef.h>
#include <stdio.h>
#include "vqa_kernels.h"

#define FIELD(name) printf("field " #name " %zu %zu\n", offsetof(vqa_yuv_to_rgb_params, name), \
                           sizeof(((vqa_yuv_to_rgb_params*)0)->name))
#define CONSTANT(name) printf("const " #name " %d\n", (int)(name))

int main(void) {
    printf("struct %zu %zu\n", sizeof(vqa_yuv_to_rgb_params), _Alignof(vqa_yuv_to_rgb_params));
    FIELD(width); FIELD(height); FIELD(bit_depth); FIELD(matrix); FIELD(range); FIELD(out_width);
    FIELD(out_height); FIELD(out_dtype); FIELD(y_pitch); FIELD(uv_pitch); FIELD(mean); FIELD(std);
    CONSTANT(VQA_KERNELS_ABI_VERSION);
    CONSTANT(VQA_OK); CONSTANT(VQA_ERROR_INVALID_ARGUMENT); CONSTANT(VQA_ERROR_NO_DEVICE);
    CONSTANT(VQA_ERROR_UNSUPPORTED_DEVICE); CONSTANT(VQA_ERROR_CUDA);
    CONSTANT(VQA_DTYPE_FLOAT32); CONSTANT(VQA_DTYPE_FLOAT16);
    CONSTANT(VQA_MATRIX_BT709); CONSTANT(VQA_MATRIX_BT601);
    CONSTANT(VQA_RANGE_LIMITED); CONSTANT(VQA_RANGE_FULL);
    return 0;
}
"""


def _c_compiler() -> str | None:
    return next((c for c in (shutil.which("cc"), shutil.which("gcc"), shutil.which("clang")) if c), None)


def test_params_struct_and_constants_match_the_c_header(tmp_path):
    compiler = _c_compiler()
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc or clang) to read the header's layout")
    source, program = tmp_path / "layout.c", tmp_path / "layout"
    source.write_text(_LAYOUT_PROGRAM)
    build = subprocess.run([compiler, "-std=c11", "-Wall", "-Werror", "-I", str(HEADER_DIR), str(source), "-o",
                            str(program)], capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    lines = [line.split() for line in subprocess.run([str(program)], capture_output=True, text=True, check=True,
                                                      timeout=60).stdout.splitlines()]
    struct = next(line for line in lines if line[0] == "struct")
    params = gp.YuvToRgbParams
    assert (int(struct[1]), int(struct[2])) == (ctypes.sizeof(params), ctypes.alignment(params))
    c_fields = {line[1]: (int(line[2]), int(line[3])) for line in lines if line[0] == "field"}
    py_fields = {name: (getattr(params, name).offset, getattr(params, name).size) for name, _ in params._fields_}
    assert list(c_fields) == list(py_fields) and c_fields == py_fields
    constants = {line[1]: int(line[2]) for line in lines if line[0] == "const"}
    assert constants["VQA_KERNELS_ABI_VERSION"] == gp.ABI_VERSION
    assert {name: constants[name] for name in gp.STATUS_NAMES.values()} == {
        name: code for code, name in gp.STATUS_NAMES.items()}
    assert gp.DTYPES == {"float32": constants["VQA_DTYPE_FLOAT32"], "float16": constants["VQA_DTYPE_FLOAT16"]}
    assert gp.MATRICES == {"bt709": constants["VQA_MATRIX_BT709"], "bt601": constants["VQA_MATRIX_BT601"]}
    assert gp.RANGES == {"limited": constants["VQA_RANGE_LIMITED"], "full": constants["VQA_RANGE_FULL"]}


def test_params_from_names():
    params = gp.yuv_to_rgb_params(97, 61, 10, "bt601", "full", (131, 77), MEAN, STD, "float16")
    assert (params.width, params.height, params.bit_depth, params.matrix, params.range) == (97, 61, 10, 1, 1)
    assert (params.out_width, params.out_height, params.out_dtype, params.y_pitch) == (131, 77, 1, 0)
    np.testing.assert_array_equal(list(params.std), np.float32(STD))
    assert (gp.yuv_to_rgb_params(64, 48).out_width, gp.yuv_to_rgb_params(64, 48).out_height) == (0, 0)
    with pytest.raises(ValueError, match="unknown colour matrix 'bt2020'"):
        gp.yuv_to_rgb_params(64, 48, matrix="bt2020")
    with pytest.raises(ValueError, match="unknown output dtype"):
        gp.yuv_to_rgb_params(64, 48, dtype="int8")


def test_frames_the_kernel_cannot_read_are_input_errors():
    def frame(width=7, height=5, bit_depth=8, dtype=np.uint8, chroma=None):
        chroma = chroma or ((height + 1) // 2, (width + 1) // 2)
        return Frame(3, np.zeros((height, width), dtype), np.zeros(chroma, dtype), np.zeros(chroma, dtype), bit_depth)

    assert gp.check_frame(frame()) == (7, 5)
    assert gp.check_frame(frame(bit_depth=10, dtype=np.uint16)) == (7, 5)
    with pytest.raises(InputError, match="frame 3: the U plane has shape \\(2, 4\\), expected \\(3, 4\\)"):
        gp.check_frame(frame(chroma=(2, 4)))
    with pytest.raises(InputError, match="holds uint8, expected uint16 for 10-bit video"):
        gp.check_frame(frame(bit_depth=10))
    with pytest.raises(InputError, match="bit depth 7"):
        gp.check_frame(frame(bit_depth=7))


def test_a_missing_library_is_a_clear_error(tmp_path):
    with pytest.raises(BackendUnavailableError, match="no such file; build it with `make kernels`"):
        gp.KernelLibrary(tmp_path / "libvqa_kernels.so")
    not_a_library = tmp_path / "libnot.so"
    not_a_library.write_bytes(b"not an ELF file")
    with pytest.raises(BackendUnavailableError, match="cannot be loaded"):
        gp.KernelLibrary(not_a_library)


@pytest.fixture(scope="module")
def kernel_library(kernels_library_path) -> gp.KernelLibrary:
    return gp.KernelLibrary(kernels_library_path)


def test_library_loads_and_reports_its_version(kernel_library):
    from importlib.metadata import version

    assert kernel_library.version() == version("vqa-rt").split("+")[0]
    assert kernel_library.version() in kernel_library.build_info()
    assert kernel_library.status_name(gp.VQA_ERROR_NO_DEVICE) == "VQA_ERROR_NO_DEVICE"


def _has_gpu(kernel_library) -> bool:
    count = ctypes.c_int32(0)
    return kernel_library.lib.vqa_device_count(ctypes.byref(count)) == 0 and count.value > 0


def test_without_a_gpu_the_binding_raises_a_typed_error_with_the_library_message(kernel_library):
    if _has_gpu(kernel_library):
        pytest.skip("a GPU is visible: the no-GPU error path cannot be exercised here")
    with pytest.raises(BackendUnavailableError) as raised:
        kernel_library.device_count()
    assert raised.value.status == gp.VQA_ERROR_NO_DEVICE
    assert kernel_library.last_error() and kernel_library.last_error() in str(raised.value)

    fake = FAKE_DEVICE_POINTER
    params = gp.yuv_to_rgb_params(97, 61, 10, "bt709", "limited", (64, 40), MEAN, STD)
    with pytest.raises(BackendUnavailableError) as raised:
        kernel_library.yuv420_to_rgb(params, fake, fake, fake, fake, 0)
    message = str(raised.value)
    assert raised.value.status == gp.VQA_ERROR_NO_DEVICE
    assert message.startswith("vqa_yuv420_to_rgb failed (VQA_ERROR_NO_DEVICE): vqa_yuv420_to_rgb: cuda")
    assert kernel_library.last_error() in message and "no usable CUDA device or driver" in message
    assert kernel_library.path in message


def test_invalid_arguments_are_input_errors_before_any_cuda_call(kernel_library):
    fake = FAKE_DEVICE_POINTER
    with pytest.raises(InputError, match="width and height must be positive") as raised:
        kernel_library.yuv420_to_rgb(gp.yuv_to_rgb_params(0, 48), fake, fake, fake, fake)
    assert raised.value.status == gp.VQA_ERROR_INVALID_ARGUMENT
    assert kernel_library.last_error() in str(raised.value)
    with pytest.raises(InputError, match="mean must be finite and std finite and non-zero"):
        kernel_library.yuv420_to_rgb(gp.yuv_to_rgb_params(64, 48, std=(1.0, 0.0, 1.0)), fake, fake, fake, fake)
    with pytest.raises(InputError, match="y, u, v and out must be non-NULL"):
        kernel_library.yuv420_to_rgb(gp.yuv_to_rgb_params(64, 48), fake, fake, fake, 0)


# ---------------------------------------------------------------- on a GPU (pycuda)

@pytest.fixture(scope="module")
def pycuda_stream(gpu_kernels):
    """(pycuda.driver, a stream) with device 0's primary context current; skips naming what is missing."""
    from vqa_rt.runtime.backends.tensorrt import import_pycuda

    try:
        cuda = import_pycuda()
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    try:
        yield cuda, cuda.Stream()
    finally:
        cuda.Context.pop()
        context.detach()


def _random_frame(width, height, bit_depth, seed, index=0) -> Frame:
    rng = np.random.default_rng(seed)
    dtype, top = (np.uint8, 255) if bit_depth == 8 else (np.uint16, (1 << bit_depth) - 1)
    chroma = ((height + 1) // 2, (width + 1) // 2)
    planes = [rng.integers(0, top + 1, shape).astype(dtype) for shape in ((height, width), chroma, chroma)]
    return Frame(index, *planes, bit_depth)


CASES = [  # (width, height, bit depth, matrix, range, analysis size)
    (97, 61, 8, "bt709", "limited", None),
    (97, 61, 10, "bt601", "full", None),
    (97, 61, 8, "bt709", "limited", (131, 77)),  # enlarge, odd
    (97, 61, 10, "bt709", "limited", (64, 40)),  # shrink (area)
    (131, 75, 10, "bt601", "limited", (150, 41)),  # fewer pixels, one axis grows
    (64, 49, 8, "bt601", "full", (64, 49)),  # the frame's own size: no resize
]


@pytest.mark.gpu
@pytest.mark.parametrize("width,height,bit_depth,matrix,color_range,size", CASES,
                         ids=["-".join(map(str, c[:5])) + f"-{'x'.join(map(str, c[5])) if c[5] else 'native'}"
                              for c in CASES])
def test_converter_fp32_matches_color_py(gpu_kernels, pycuda_stream, width, height, bit_depth, matrix, color_range,
                                         size):
    from vqa_rt.runtime.color import normalize, yuv_to_rgb

    cuda, stream = pycuda_stream
    converter = gp.GpuYuvConverter(gp.KernelLibrary(gpu_kernels.path), cuda, matrix=matrix, color_range=color_range,
                                   mean=MEAN, std=STD, size=size, dtype="float32")
    # Three frames through two staging slots: a slot is reused while the stream is busy.
    frames = [_random_frame(width, height, bit_depth, seed=1000 * bit_depth + width + k, index=k) for k in range(3)]
    shape = converter.output_shape(width, height)
    outputs = [cuda.mem_alloc(converter.output_nbytes(width, height)) for _ in frames]
    try:
        for frame, out in zip(frames, outputs):
            converter.convert(frame, int(out), stream)
        stream.synchronize()
        for frame, out in zip(frames, outputs):
            actual = np.empty(shape, np.float32)
            cuda.memcpy_dtoh(actual, out)
            expected = normalize(yuv_to_rgb(frame, matrix, color_range, size), MEAN, STD)
            assert actual.shape == expected.shape
            assert np.abs(actual - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max()), f"frame {frame.index}"
    finally:
        converter.close()
        for out in outputs:
            out.free()


@pytest.mark.gpu
def test_converter_fp16_output_and_per_call_range(gpu_kernels, pycuda_stream):
    from vqa_rt.runtime.color import normalize, yuv_to_rgb

    cuda, stream = pycuda_stream
    converter = gp.GpuYuvConverter(gp.KernelLibrary(gpu_kernels.path), cuda, mean=MEAN, std=STD, size=(101, 67),
                                   dtype="float16")
    frame = _random_frame(97, 61, 10, seed=7)
    out = cuda.mem_alloc(converter.output_nbytes(97, 61))
    try:
        converter.convert(frame, int(out), stream, color_range="full")
        stream.synchronize()
        actual = np.empty(converter.output_shape(97, 61), np.float16)
        cuda.memcpy_dtoh(actual, out)
    finally:
        converter.close()
        out.free()
    expected = normalize(yuv_to_rgb(frame, "bt709", "full", (101, 67)), MEAN, STD)
    np.testing.assert_allclose(actual.astype(np.float32), expected, rtol=2 ** -10, atol=2 ** -10)
