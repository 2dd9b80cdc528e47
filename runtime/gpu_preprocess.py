"""Pre-processing on the GPU: ``libvqa_kernels.so``'s YUV 4:2:0 -> normalised planar RGB through ctypes,
and :class:`GpuYuvConverter`, which uploads a frame's planes once and converts them straight into a
device buffer (a TensorRT engine's input) on a given CUDA stream.

The binding mirrors ``kernels/capi/vqa_kernels.h`` (``vqa_yuv_to_rgb_params`` field for field; the
tests compare its layout with the header's as a C compiler sees it). Every failed call raises a
vqa-rt error carrying ``vqa_last_error()``'s message: :class:`~vqa_rt.errors.InputError` for invalid
arguments, :class:`~vqa_rt.errors.BackendUnavailableError` for anything on the device side (no
GPU, no kernels for its architecture, a CUDA error). Nothing is loaded or imported (pycuda) when
this module is imported.

The library uses the CUDA runtime API, which works in the context current on the calling thread:
pycuda's primary context of device 0, as :class:`~vqa_rt.runtime.backends.tensorrt.TensorRTRunner`
makes current while it runs.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from vqa_rt.errors import BackendUnavailableError, InputError
from vqa_rt.runtime.plugin import KERNELS_HINT, find_kernels_library

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


def declare_abi(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Set the result and argument types of the library's common and pre-processing functions
    (pointer arguments are plain integers: device addresses, or a ``cudaStream_t``); returns ``lib``.
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
    return lib


class KernelLibrary:
    """``libvqa_kernels.so`` (found as :func:`~vqa_rt.runtime.plugin.find_kernels_library` finds it) through
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


# ---------------------------------------------------------------------------- frames -> device

PLANE_ALIGNMENT = 256  # bytes between the starts of the Y, U and V planes in the staging buffers


def plane_dtype(bit_depth: int) -> np.dtype:
    """The samples' type the kernel reads: uint8 for 8-bit, uint16 (little-endian) for 9..16-bit."""
    if not 8 <= bit_depth <= 16:
        raise InputError(f"bit depth {bit_depth} is not supported by the GPU conversion (8..16)")
    return np.dtype(np.uint8 if bit_depth == 8 else "<u2")


def check_frame(frame) -> tuple[int, int]:
    """(width, height) of a :class:`~vqa_rt.runtime.video.Frame` whose planes are what the kernel reads:
    Y (height, width) and U, V ((height+1)//2, (width+1)//2), all of :func:`plane_dtype`."""
    if frame.y.ndim != 2:
        raise InputError(f"frame {frame.index}: the Y plane has shape {frame.y.shape}, expected (height, width)")
    height, width = frame.y.shape
    chroma = ((height + 1) // 2, (width + 1) // 2)
    dtype = plane_dtype(frame.bit_depth)
    for name, plane, shape in (("Y", frame.y, (height, width)), ("U", frame.u, chroma), ("V", frame.v, chroma)):
        if plane.shape != shape:
            raise InputError(f"frame {frame.index}: the {name} plane has shape {plane.shape}, expected {shape} "
                             "for YUV 4:2:0")
        if plane.dtype != dtype:
            raise InputError(f"frame {frame.index}: the {name} plane holds {plane.dtype}, expected {dtype} for "
                             f"{frame.bit_depth}-bit video")
    return width, height


def _aligned(nbytes: int) -> int:
    return -(-nbytes // PLANE_ALIGNMENT) * PLANE_ALIGNMENT


@dataclass
class _Staging:
    """One frame's planes: pinned host memory and device memory (Y, U, V one after the other), and an
    event recorded after the conversion, so neither is overwritten while the GPU still reads it."""

    host: np.ndarray  # uint8, page-locked
    device: Any  # pycuda DeviceAllocation
    capacity: int
    event: Any  # pycuda Event


class GpuYuvConverter:
    """YUV 4:2:0 frames -> normalised planar RGB written at a device address, on the GPU.

    ``convert(frame, out, stream)`` copies the frame's three planes into a pinned staging buffer,
    uploads them with one ``memcpy_htod_async`` on ``stream``, and enqueues the kernel there, writing
    ``output_shape(width, height)`` values of ``dtype`` at device address ``out``. Nothing waits
    for the GPU: ``slots`` staging buffers are used in turn, and a slot is refilled only once its
    previous upload and conversion have finished (an event per slot, recorded after the kernel).

    ``cuda`` is ``pycuda.driver``. Every method must run with the CUDA context of ``stream``
    current (inside :meth:`TensorRTRunner.infer_device`'s ``fill``, or the runner's
    :meth:`~vqa_rt.runtime.backends.tensorrt.TensorRTRunner.device_context`); :meth:`close` frees
    the buffers and must run in that context too.
    """

    def __init__(self, kernels: KernelLibrary, cuda, *, matrix: str = "bt709", color_range: str = "limited",
                 mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0),
                 size: tuple[int, int] | None = None, dtype: str | np.dtype = "float32", slots: int = 2):
        self.kernels, self.cuda = kernels, cuda
        self.dtype = np.dtype(dtype)
        if self.dtype.name not in DTYPES:
            raise ValueError(f"the GPU conversion writes float32 or float16, not {self.dtype}")
        # Checked now rather than at the first frame.
        yuv_to_rgb_params(2, 2, 8, matrix, color_range, None, mean, std, self.dtype.name)
        if size is not None and min(size) <= 0:
            raise ValueError(f"analysis size must be positive, got {size[0]}x{size[1]}")
        self.matrix, self.color_range, self.size = matrix, color_range, size
        self.mean, self.std = tuple(map(float, mean)), tuple(map(float, std))
        self._slots: list[_Staging | None] = [None] * max(1, int(slots))
        self._next = 0

    def output_shape(self, width: int, height: int) -> tuple[int, int, int]:
        """(3, height, width) of the output for a ``width`` x ``height`` frame (after the resize, if any)."""
        out_width, out_height = self.size or (width, height)
        return 3, int(out_height), int(out_width)

    def output_nbytes(self, width: int, height: int) -> int:
        return int(np.prod(self.output_shape(width, height))) * self.dtype.itemsize

    def _slot(self, nbytes: int) -> _Staging:
        index = self._next
        self._next = (index + 1) % len(self._slots)
        slot = self._slots[index]
        if slot is not None:
            slot.event.synchronize()  # its last upload and conversion have finished: it may be refilled
            if slot.capacity >= nbytes:
                return slot
            self._free(slot)
        capacity = _aligned(nbytes)
        slot = _Staging(self.cuda.pagelocked_empty(capacity, np.uint8), self.cuda.mem_alloc(capacity), capacity,
                        self.cuda.Event())
        self._slots[index] = slot
        return slot

    def convert(self, frame, out: int, stream=None, color_range: str | None = None) -> None:
        """Enqueue the upload and conversion of ``frame`` (a :class:`~vqa_rt.runtime.video.Frame`) into
        device address ``out`` on ``stream`` (a ``pycuda.driver.Stream``; None: the default stream),
        with ``color_range`` (default: the converter's)."""
        width, height = check_frame(frame)
        planes = (frame.y, frame.u, frame.v)
        offsets, total = [], 0
        for plane in planes:
            offsets.append(total)
            total += _aligned(plane.nbytes)
        params = yuv_to_rgb_params(width, height, frame.bit_depth, self.matrix, color_range or self.color_range,
                                   self.size, self.mean, self.std, self.dtype.name)
        slot = self._slot(total)
        for plane, offset in zip(planes, offsets):
            view = slot.host[offset: offset + plane.nbytes].view(plane.dtype).reshape(plane.shape)
            np.copyto(view, plane)
        self.cuda.memcpy_htod_async(slot.device, slot.host[:total], stream)
        base = int(slot.device)
        try:
            self.kernels.yuv420_to_rgb(params, base + offsets[0], base + offsets[1], base + offsets[2], int(out),
                                       stream.handle if stream is not None else 0)
        finally:
            slot.event.record(stream)  # after the kernel: both sides of the slot are in use until then

    def _free(self, slot: _Staging) -> None:
        slot.device.free()
        free_host = getattr(slot.host.base, "free", None)  # pycuda's HostAllocation
        if free_host is not None:
            free_host()

    def close(self) -> None:
        """Free the staging buffers (once the work queued on them has finished)."""
        for index, slot in enumerate(self._slots):
            if slot is not None:
                slot.event.synchronize()
                self._free(slot)
                self._slots[index] = None
