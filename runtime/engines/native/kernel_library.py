"""``libvqa_kernels.so``'s C ABI through ctypes: the parameter structs and enums of
``kernels/capi/vqa_kernels.h`` (field for field; the tests compare their layout with the header's as
a C compiler sees it) and :class:`KernelLibrary`, whose calls raise vqa-rt errors carrying
``vqa_last_error()``'s message: :class:`~vqa_rt.errors.InputError` for invalid arguments,
:class:`~vqa_rt.errors.BackendUnavailableError` for anything on the device side (no GPU, no kernels
for its architecture, a CUDA error). Nothing is loaded when this module is imported.

The library uses the CUDA runtime API, which works in the context current on the calling thread
(the device's primary context, as pycuda, torch and the TensorRT runner use). Pointer arguments
are plain integers: device addresses, and a ``cudaStream_t`` for the stream (0: the legacy
default stream).
"""

from __future__ import annotations

import ctypes
import os
from typing import Sequence

from vqa_rt.errors import BackendUnavailableError, InputError
from vqa_rt.runtime.engines.native.libraries import KERNELS_HINT, find_kernels_library

ABI_VERSION = 1  # VQA_KERNELS_ABI_VERSION this binding was written for

# The header's enums.
VQA_OK, VQA_ERROR_INVALID_ARGUMENT, VQA_ERROR_NO_DEVICE, VQA_ERROR_UNSUPPORTED_DEVICE, VQA_ERROR_CUDA = range(5)
STATUS_NAMES = {VQA_OK: "VQA_OK", VQA_ERROR_INVALID_ARGUMENT: "VQA_ERROR_INVALID_ARGUMENT",
                VQA_ERROR_NO_DEVICE: "VQA_ERROR_NO_DEVICE",
                VQA_ERROR_UNSUPPORTED_DEVICE: "VQA_ERROR_UNSUPPORTED_DEVICE", VQA_ERROR_CUDA: "VQA_ERROR_CUDA"}
DTYPES = {"float32": 0, "float16": 1}  # vqa_dtype
MATRICES = {"bt709": 0, "bt601": 1}  # vqa_color_matrix
RANGES = {"limited": 0, "full": 1}  # vqa_color_range


class YuvToRgbParams(ctypes.Structure):
    """``vqa_yuv_to_rgb_params``: one planar YUV 4:2:0 frame to RGB planes, normalised as (v - mean) / std."""

    _fields_ = [
        ("width", ctypes.c_int32), ("height", ctypes.c_int32),  # luma size
        ("bit_depth", ctypes.c_int32),  # 8: uint8 samples; 9..16: uint16 little-endian
        ("matrix", ctypes.c_int32),  # vqa_color_matrix
        ("range", ctypes.c_int32),  # vqa_color_range
        ("out_width", ctypes.c_int32), ("out_height", ctypes.c_int32),  # both 0: no resize
        ("out_dtype", ctypes.c_int32),  # vqa_dtype
        ("y_pitch", ctypes.c_int64), ("uv_pitch", ctypes.c_int64),  # bytes per row; 0: packed
        ("mean", ctypes.c_float * 3), ("std", ctypes.c_float * 3),
    ]


def yuv_to_rgb_params(width: int, height: int, bit_depth: int = 8, matrix: str = "bt709",
                      color_range: str = "limited", size: tuple[int, int] | None = None,
                      mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0),
                      dtype: str = "float32", y_pitch: int = 0, uv_pitch: int = 0) -> YuvToRgbParams:
    """The parameters for a ``width`` x ``height`` frame; ``size=(width, height)`` resizes the output
    (None: the frame's size), ``dtype`` is the output's (``float32`` or ``float16``)."""
    for value, names, what in ((matrix, MATRICES, "colour matrix"), (color_range, RANGES, "colour range"),
                               (dtype, DTYPES, "output dtype")):
        if value not in names:
            raise ValueError(f"unknown {what} {value!r} (expected one of {tuple(names)})")
    out_width, out_height = size or (0, 0)
    return YuvToRgbParams(int(width), int(height), int(bit_depth), MATRICES[matrix], RANGES[color_range],
                          int(out_width), int(out_height), DTYPES[dtype], int(y_pitch), int(uv_pitch),
                          (ctypes.c_float * 3)(*mean), (ctypes.c_float * 3)(*std))


_DEFORM_CONV_FIELDS = ("batch", "in_channels", "in_height", "in_width", "out_channels", "kernel_h", "kernel_w",
                       "out_height", "out_width", "stride_h", "stride_w", "pad_top", "pad_left", "pad_bottom",
                       "pad_right", "dilation_h", "dilation_w", "group", "offset_group")


class DeformConvParams(ctypes.Structure):
    """``vqa_deform_conv_params``: one modulated deformable convolution (ONNX ``DeformConv``), NCHW."""

    _fields_ = [(name, ctypes.c_int32) for name in _DEFORM_CONV_FIELDS]


def deform_conv_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                            dilation: int) -> int:
    """The output length of one spatial axis (ONNX ``DeformConv``/``Conv``)."""
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def deform_conv_params(x_shape: Sequence[int], weight_shape: Sequence[int], stride: Sequence[int] = (1, 1),
                       pads: Sequence[int] = (0, 0, 0, 0), dilation: Sequence[int] = (1, 1), group: int = 1,
                       offset_group: int = 1) -> DeformConvParams:
    """The parameters for input ``x_shape`` (N, C, H, W) and weight ``weight_shape`` (oC, C/group, kH, kW);
    ``pads`` is (top, left, bottom, right) as ONNX ``pads``."""
    n, c, h, w = x_shape
    oc, _, kh, kw = weight_shape
    out_h = deform_conv_output_size(h, kh, stride[0], pads[0], pads[2], dilation[0])
    out_w = deform_conv_output_size(w, kw, stride[1], pads[1], pads[3], dilation[1])
    return DeformConvParams(n, c, h, w, oc, kh, kw, out_h, out_w, *stride, *pads, *dilation, group, offset_group)


def declare_abi(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Set the result and argument types of every function of the C ABI; returns ``lib``.
    Raises AttributeError when a function is missing."""
    for name in ("vqa_kernels_version", "vqa_kernels_build_info", "vqa_last_error", "vqa_status_name"):
        getattr(lib, name).restype = ctypes.c_char_p
    lib.vqa_kernels_version.argtypes = lib.vqa_kernels_build_info.argtypes = lib.vqa_last_error.argtypes = []
    lib.vqa_status_name.argtypes = [ctypes.c_int32]
    lib.vqa_kernels_abi_version.argtypes = []
    lib.vqa_kernels_abi_version.restype = ctypes.c_int32
    lib.vqa_device_count.argtypes = [ctypes.POINTER(ctypes.c_int32)]
    lib.vqa_device_count.restype = ctypes.c_int32
    void_p = ctypes.c_void_p
    lib.vqa_yuv420_to_rgb.argtypes = [ctypes.POINTER(YuvToRgbParams), void_p, void_p, void_p, void_p, void_p]
    lib.vqa_yuv420_to_rgb.restype = ctypes.c_int32
    params = ctypes.POINTER(DeformConvParams)
    lib.vqa_deform_conv_workspace_size.argtypes = [params, ctypes.c_int32, ctypes.POINTER(ctypes.c_uint64)]
    lib.vqa_deform_conv_forward.argtypes = [params, ctypes.c_int32, *[void_p] * 7, ctypes.c_uint64, void_p]
    lib.vqa_deform_conv_workspace_size.restype = lib.vqa_deform_conv_forward.restype = ctypes.c_int32
    return lib


class KernelLibrary:
    """``libvqa_kernels.so`` (found by :func:`~vqa_rt.runtime.engines.native.libraries.find_kernels_library`) through
    ctypes; its calls raise vqa-rt errors with the library's message instead of returning a status."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = find_kernels_library(path)
        try:
            lib = ctypes.CDLL(self.path)
        except OSError as exc:
            raise BackendUnavailableError(f"kernel library {self.path} cannot be loaded ({exc}); {KERNELS_HINT}") \
                from None
        try:
            self.lib = declare_abi(lib)
        except AttributeError as exc:
            raise BackendUnavailableError(f"kernel library {self.path} lacks a function of the C ABI ({exc}): not "
                                          f"libvqa_kernels, or an older build; {KERNELS_HINT}") from None
        abi = self.lib.vqa_kernels_abi_version()
        if abi != ABI_VERSION:
            raise BackendUnavailableError(f"kernel library {self.path} has C ABI version {abi}, this vqa-rt needs "
                                          f"{ABI_VERSION}; {KERNELS_HINT}")

    def version(self) -> str:
        return self.lib.vqa_kernels_version().decode()

    def build_info(self) -> str:
        return self.lib.vqa_kernels_build_info().decode()

    def last_error(self) -> str:
        """The message of this thread's last failed call ("" after a successful one)."""
        return self.lib.vqa_last_error().decode()

    def status_name(self, status: int) -> str:
        return self.lib.vqa_status_name(status).decode()

    def check(self, status: int, what: str) -> None:
        """Raise the vqa-rt error for a failed call's ``status`` (read on the calling thread, right after it)."""
        if status == VQA_OK:
            return
        message = f"{what} failed ({self.status_name(status)}): {self.last_error() or 'no message'}"
        if status == VQA_ERROR_INVALID_ARGUMENT:
            error: Exception = InputError(message)
        else:
            error = BackendUnavailableError(f"{message} [kernel library {self.path}]")
        error.status = status
        raise error

    def device_count(self) -> int:
        """The number of CUDA devices the library sees; raises BackendUnavailableError when there are none."""
        count = ctypes.c_int32(0)
        self.check(self.lib.vqa_device_count(ctypes.byref(count)), "vqa_device_count")
        return count.value

    def yuv420_to_rgb(self, params: YuvToRgbParams, y: int, u: int, v: int, out: int, stream: int = 0) -> None:
        """Enqueue the conversion of the planes at device addresses ``y``, ``u``, ``v`` into ``out``
        ((3, out_height, out_width) of ``out_dtype``) on ``stream`` (a ``cudaStream_t``; 0: the legacy
        default stream). Errors raised while the kernel runs show at the stream's next synchronisation."""
        status = self.lib.vqa_yuv420_to_rgb(ctypes.byref(params), y, u, v, out, stream or None)
        self.check(status, "vqa_yuv420_to_rgb")

    def deform_conv_workspace_size(self, params: DeformConvParams, dtype: str) -> int:
        """Bytes of device workspace :meth:`deform_conv_forward` needs for ``params`` in ``dtype``."""
        size = ctypes.c_uint64(0)
        self.check(self.lib.vqa_deform_conv_workspace_size(ctypes.byref(params), DTYPES[dtype], ctypes.byref(size)),
                   "vqa_deform_conv_workspace_size")
        return size.value

    def deform_conv_forward(self, params: DeformConvParams, dtype: str, x: int, weight: int, offset: int, mask: int,
                            bias: int, y: int, workspace: int, workspace_bytes: int, stream: int = 0) -> None:
        """Enqueue ``y = DeformConv(x, weight, offset, bias, mask)`` on ``stream``, every tensor of ``dtype``
        at a device address (``mask``, ``bias``: 0 for none)."""
        status = self.lib.vqa_deform_conv_forward(ctypes.byref(params), DTYPES[dtype], x, weight, offset, mask or None,
                                                  bias or None, y, workspace, workspace_bytes, stream or None)
        self.check(status, "vqa_deform_conv_forward")
