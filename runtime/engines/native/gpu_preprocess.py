"""Pre-processing on the GPU: :class:`GpuYuvConverter` uploads a frame's YUV 4:2:0 planes once and
converts them with ``libvqa_kernels.so`` (:mod:`vqa_rt.runtime.engines.native.kernel_library`) straight into a device
buffer (a TensorRT engine's input), normalised planar RGB, on a given CUDA stream. Nothing is loaded
or imported (pycuda) when this module is imported.

The kernel runs in the context current on the calling thread: pycuda's primary context of device 0,
as :class:`~vqa_rt.runtime.engines.backends.tensorrt.TensorRTRunner` makes current while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from vqa_rt.errors import InputError
from vqa_rt.runtime.engines.native.kernel_library import DTYPES, KernelLibrary, yuv_to_rgb_params

PLANE_ALIGNMENT = 256  # bytes between the starts of the Y, U and V planes in the staging buffers


def plane_dtype(bit_depth: int) -> np.dtype:
    """The samples' type the kernel reads: uint8 for 8-bit, uint16 (little-endian) for 9..16-bit."""
    if not 8 <= bit_depth <= 16:
        raise InputError(f"bit depth {bit_depth} is not supported by the GPU conversion (8..16)")
    return np.dtype(np.uint8 if bit_depth == 8 else "<u2")


def check_frame(frame) -> tuple[int, int]:
    """(width, height) of a :class:`~vqa_rt.runtime.frames.video.Frame` whose planes are what the kernel reads:
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
    :meth:`~vqa_rt.runtime.engines.backends.tensorrt.TensorRTRunner.device_context`); :meth:`close` frees
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
        """Enqueue the upload and conversion of ``frame`` (a :class:`~vqa_rt.runtime.frames.video.Frame`) into
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
