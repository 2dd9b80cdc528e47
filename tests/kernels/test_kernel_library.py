"""The ctypes binding of libvqa_kernels' C ABI (vqa_rt.runtime.engines.native.kernel_library): its structs and
constants against the C header (layout via the system C compiler), the parameter builders, and
the errors its calls raise where no GPU is visible or the arguments are invalid."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vqa_rt.errors import BackendUnavailableError, InputError
from vqa_rt.runtime.engines.native import kernel_library as kl

REPO = Path(__file__).resolve().parents[2]
HEADER_DIR = REPO / "kernels" / "capi"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FAKE_DEVICE_POINTER = 0x7F0000000000  # never dereferenced: the calls fail before any launch

_LAYOUT_PROGRAM = r"""
#include <stddef.h>
#include <stdio.h>
#include "vqa_kernels.h"

#define STRUCT(type) printf("struct " #type " %zu %zu\n", sizeof(type), _Alignof(type))
#define FIELD(type, name) printf("field " #type " " #name " %zu %zu\n", offsetof(type, name), \
                                 sizeof(((type*)0)->name))
#define YUV(name) FIELD(vqa_yuv_to_rgb_params, name)
#define DEFORM(name) FIELD(vqa_deform_conv_params, name)
#define CONSTANT(name) printf("const " #name " %d\n", (int)(name))

int main(void) {
    STRUCT(vqa_yuv_to_rgb_params);
    YUV(width); YUV(height); YUV(bit_depth); YUV(matrix); YUV(range); YUV(out_width);
    YUV(out_height); YUV(out_dtype); YUV(y_pitch); YUV(uv_pitch); YUV(mean); YUV(std);
    STRUCT(vqa_deform_conv_params);
    DEFORM(batch); DEFORM(in_channels); DEFORM(in_height); DEFORM(in_width); DEFORM(out_channels);
    DEFORM(kernel_h); DEFORM(kernel_w); DEFORM(out_height); DEFORM(out_width); DEFORM(stride_h);
    DEFORM(stride_w); DEFORM(pad_top); DEFORM(pad_left); DEFORM(pad_bottom); DEFORM(pad_right);
    DEFORM(dilation_h); DEFORM(dilation_w); DEFORM(group); DEFORM(offset_group);
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
    for c_type, params in (("vqa_yuv_to_rgb_params", kl.YuvToRgbParams),
                           ("vqa_deform_conv_params", kl.DeformConvParams)):
        struct = next(line for line in lines if line[:2] == ["struct", c_type])
        assert (int(struct[2]), int(struct[3])) == (ctypes.sizeof(params), ctypes.alignment(params)), c_type
        c_fields = {line[2]: (int(line[3]), int(line[4])) for line in lines if line[:2] == ["field", c_type]}
        py_fields = {name: (getattr(params, name).offset, getattr(params, name).size)
                     for name, _ in params._fields_}
        assert list(c_fields) == list(py_fields) and c_fields == py_fields, c_type
    constants = {line[1]: int(line[2]) for line in lines if line[0] == "const"}
    assert constants["VQA_KERNELS_ABI_VERSION"] == kl.ABI_VERSION
    assert {name: constants[name] for name in kl.STATUS_NAMES.values()} == {
        name: code for code, name in kl.STATUS_NAMES.items()}
    assert kl.DTYPES == {"float32": constants["VQA_DTYPE_FLOAT32"], "float16": constants["VQA_DTYPE_FLOAT16"]}
    assert kl.MATRICES == {"bt709": constants["VQA_MATRIX_BT709"], "bt601": constants["VQA_MATRIX_BT601"]}
    assert kl.RANGES == {"limited": constants["VQA_RANGE_LIMITED"], "full": constants["VQA_RANGE_FULL"]}


def test_params_from_names():
    params = kl.yuv_to_rgb_params(97, 61, 10, "bt601", "full", (131, 77), MEAN, STD, "float16")
    assert (params.width, params.height, params.bit_depth, params.matrix, params.range) == (97, 61, 10, 1, 1)
    assert (params.out_width, params.out_height, params.out_dtype, params.y_pitch) == (131, 77, 1, 0)
    np.testing.assert_array_equal(list(params.std), np.float32(STD))
    assert (kl.yuv_to_rgb_params(64, 48).out_width, kl.yuv_to_rgb_params(64, 48).out_height) == (0, 0)
    with pytest.raises(ValueError, match="unknown colour matrix 'bt2020'"):
        kl.yuv_to_rgb_params(64, 48, matrix="bt2020")
    with pytest.raises(ValueError, match="unknown output dtype"):
        kl.yuv_to_rgb_params(64, 48, dtype="int8")


def test_deform_conv_params_from_shapes():
    params = kl.deform_conv_params((2, 12, 17, 23), (8, 4, 3, 2), stride=(2, 1), pads=(1, 0, 2, 1),
                                   dilation=(2, 3), group=3, offset_group=2)
    fields = {name: getattr(params, name) for name, _ in params._fields_}
    assert fields == {"batch": 2, "in_channels": 12, "in_height": 17, "in_width": 23, "out_channels": 8,
                      "kernel_h": 3, "kernel_w": 2, "out_height": 8, "out_width": 21, "stride_h": 2, "stride_w": 1,
                      "pad_top": 1, "pad_left": 0, "pad_bottom": 2, "pad_right": 1, "dilation_h": 2,
                      "dilation_w": 3, "group": 3, "offset_group": 2}
    # (17 + 1 + 2 - 2*2 - 1) // 2 + 1 = 8 and (23 + 0 + 1 - 3*1 - 1) // 1 + 1 = 21, as ONNX Conv
    assert kl.deform_conv_output_size(1080 // 8, 3, 1, 1, 1, 1) == 135


def test_a_missing_library_is_a_clear_error(tmp_path):
    with pytest.raises(BackendUnavailableError, match="no such file; build it with `make kernels`"):
        kl.KernelLibrary(tmp_path / "libvqa_kernels.so")
    not_a_library = tmp_path / "libnot.so"
    not_a_library.write_bytes(b"not an ELF file")
    with pytest.raises(BackendUnavailableError, match="cannot be loaded"):
        kl.KernelLibrary(not_a_library)


@pytest.fixture(scope="module")
def kernel_library(kernels_library_path) -> kl.KernelLibrary:
    return kl.KernelLibrary(kernels_library_path)


def test_library_loads_and_reports_its_version(kernel_library):
    from importlib.metadata import version

    assert kernel_library.version() == version("vqa-rt").split("+")[0]
    assert kernel_library.version() in kernel_library.build_info()
    assert kernel_library.status_name(kl.VQA_ERROR_NO_DEVICE) == "VQA_ERROR_NO_DEVICE"


def _has_gpu(kernel_library) -> bool:
    count = ctypes.c_int32(0)
    return kernel_library.lib.vqa_device_count(ctypes.byref(count)) == 0 and count.value > 0


def test_without_a_gpu_the_binding_raises_a_typed_error_with_the_library_message(kernel_library):
    if _has_gpu(kernel_library):
        pytest.skip("a GPU is visible: the no-GPU error path cannot be exercised here")
    with pytest.raises(BackendUnavailableError) as raised:
        kernel_library.device_count()
    assert raised.value.status == kl.VQA_ERROR_NO_DEVICE
    assert kernel_library.last_error() and kernel_library.last_error() in str(raised.value)

    fake = FAKE_DEVICE_POINTER
    params = kl.yuv_to_rgb_params(97, 61, 10, "bt709", "limited", (64, 40), MEAN, STD)
    with pytest.raises(BackendUnavailableError) as raised:
        kernel_library.yuv420_to_rgb(params, fake, fake, fake, fake, 0)
    message = str(raised.value)
    assert raised.value.status == kl.VQA_ERROR_NO_DEVICE
    assert message.startswith("vqa_yuv420_to_rgb failed (VQA_ERROR_NO_DEVICE): vqa_yuv420_to_rgb: cuda")
    assert kernel_library.last_error() in message and "no usable CUDA device or driver" in message
    assert kernel_library.path in message


def test_invalid_arguments_are_input_errors_before_any_cuda_call(kernel_library):
    fake = FAKE_DEVICE_POINTER
    with pytest.raises(InputError, match="width and height must be positive") as raised:
        kernel_library.yuv420_to_rgb(kl.yuv_to_rgb_params(0, 48), fake, fake, fake, fake)
    assert raised.value.status == kl.VQA_ERROR_INVALID_ARGUMENT
    assert kernel_library.last_error() in str(raised.value)
    with pytest.raises(InputError, match="mean must be finite and std finite and non-zero"):
        kernel_library.yuv420_to_rgb(kl.yuv_to_rgb_params(64, 48, std=(1.0, 0.0, 1.0)), fake, fake, fake, fake)
    with pytest.raises(InputError, match="y, u, v and out must be non-NULL"):
        kernel_library.yuv420_to_rgb(kl.yuv_to_rgb_params(64, 48), fake, fake, fake, 0)


def test_deform_conv_calls_raise_typed_errors(kernel_library):
    fake = FAKE_DEVICE_POINTER
    params = kl.deform_conv_params((1, 8, 9, 10), (4, 8, 3, 3), pads=(1, 1, 1, 1), offset_group=2)
    need = kernel_library.deform_conv_workspace_size(params, "float16")  # sizing needs no GPU
    assert need > 0
    with pytest.raises(InputError, match="needed") as raised:
        kernel_library.deform_conv_forward(params, "float32", fake, fake, fake, 0, 0, fake, fake, 0)
    assert raised.value.status == kl.VQA_ERROR_INVALID_ARGUMENT
    bad = kl.deform_conv_params((1, 8, 9, 10), (4, 2, 3, 3), pads=(1, 1, 1, 1), group=3)
    with pytest.raises(InputError, match="vqa_deform_conv_workspace_size failed"):
        kernel_library.deform_conv_workspace_size(bad, "float32")
    if _has_gpu(kernel_library):
        return
    workspace = kernel_library.deform_conv_workspace_size(params, "float32")
    with pytest.raises(BackendUnavailableError) as raised:
        kernel_library.deform_conv_forward(params, "float32", fake, fake, fake, fake, fake, fake, fake, workspace)
    assert raised.value.status == kl.VQA_ERROR_NO_DEVICE
    assert "vqa_deform_conv_forward failed (VQA_ERROR_NO_DEVICE)" in str(raised.value)
