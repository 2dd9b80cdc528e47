"""The FR scorer for TensorRT plans with pre-processing on the GPU.

:class:`GpuFRScorer` is what the scorer factory picks for an FR ``.plan``: the prefetch thread
only hands the decoded frames on, and each batch is one :meth:`TensorRTRunner.infer_device
<vqa_rt.runtime.engines.backends.tensorrt.TensorRTRunner.infer_device>` call in which every source frame's
YUV planes are uploaded once and converted by ``libvqa_kernels.so`` straight into the engine's input
buffers. It scores exactly as :class:`~vqa_rt.runtime.scorers.fr.FRScorer` does with an ONNX file:
same colour matrix and range (options, then the video's tag, then limited), analysis size (the
kernel's resize follows ``runtime/frames/color.py``), mean/std from the model's metadata, and each source
frame is converted once: the last converted frame of each video is kept on the device and copied,
device to device, into ``ref_prev``/``dist_prev`` when it is the next pair's previous frame.

Without the kernel library (``make kernels``) it warns once and pre-processes on the CPU like
:class:`FRScorer`; ``describe()["preprocess"]`` says which (``"gpu"`` or ``"cpu"``). NR plans
keep the CPU pre-processing of :class:`~vqa_rt.runtime.scorers.nr.NRScorer` (its resize, crop and
padding to the vision tower's input have no kernel).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from vqa_rt.errors import BackendUnavailableError, ModelError
from vqa_rt.runtime.engines.native.gpu_preprocess import GpuYuvConverter
from vqa_rt.runtime.engines.native.kernel_library import DTYPES, KernelLibrary
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.selection import FramePair
from vqa_rt.runtime.frames.video import Frame, VideoFormat
from vqa_rt.runtime.scorers.fr import FRScorer


@dataclass
class _Converted:
    """The last source frame of one video converted on the device: its index and a copy of its RGB."""

    index: int | None
    buffer: Any  # pycuda DeviceAllocation of one frame's (3, H, W) input
    nbytes: int


class GpuFRScorer(FRScorer):
    """An exported FR model as a TensorRT plan, fed by GPU pre-processing (module docstring).

    ``kernels`` is the loaded kernel library (default: found by
    :func:`~vqa_rt.runtime.engines.native.libraries.find_kernels_library`).
    """

    def __init__(self, engine: Engine, options: FrameOptions, formats: tuple[VideoFormat, VideoFormat],
                 device: str = "cpu", threads: int = 0, kernels: KernelLibrary | None = None):
        super().__init__(engine, options, formats, device, threads)  # opens the runner: TensorRT is checked first
        if len(self.model.inputs) != 4:
            raise ModelError(f"{engine.path}: an FR model has 4 inputs (ref, dist, ref_prev, dist_prev), this one "
                             f"has {len(self.model.inputs)}")
        self.kernels = kernels
        if self.kernels is None:
            try:
                self.kernels = KernelLibrary()
            except BackendUnavailableError as exc:
                print(f"vqa-rt: warning: {exc}; pre-processing on the CPU", file=sys.stderr)
        self._converter: GpuYuvConverter | None = None
        self._converted: list[_Converted | None] = [None, None]  # per video: reference, distorted

    @property
    def on_gpu(self) -> bool:
        """Whether frames are converted on the GPU (the kernel library is loaded)."""
        return self.kernels is not None

    @property
    def _device_runner(self):
        """The TensorRT runner itself (inside ``warm_runners`` the scorer holds a SharedRunner over it)."""
        return getattr(self.runner, "inner", self.runner)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "preprocess": "gpu" if self.on_gpu else "cpu"}

    def prepare(self, pair: FramePair) -> Any:
        """On the GPU path the decoded frames themselves: conversion happens in :meth:`score_batch`."""
        return pair if self.on_gpu else super().prepare(pair)

    def score_batch(self, prepared: list[Any]) -> list[dict[str, float]]:
        if not self.on_gpu:
            return super().score_batch(prepared)
        out_width, out_height = self.frame_size
        shape = (len(prepared), 3, int(out_height), int(out_width))
        values = self._device_runner.infer_device({name: shape for name in self.model.inputs},
                                                  lambda addresses: self._fill(prepared, addresses))
        return [{name: float(values[name][row]) for name in self.model.outputs} for row in range(len(prepared))]

    # ------------------------------------------------------------------ on the runner's stream

    def _make_converter(self) -> GpuYuvConverter:
        runner = self._device_runner
        dtypes = {info.name: info.dtype for info in runner.input_metadata()}
        names = set(self.model.inputs) - set(dtypes)
        if names:
            raise ModelError(f"{self.engine.path}: the plan has no input(s) {', '.join(sorted(names))} named in its "
                             "metadata")
        kinds = {dtypes[name] for name in self.model.inputs}
        dtype = next(iter(kinds))
        if len(kinds) != 1 or dtype.name not in DTYPES:
            raise ModelError(f"{self.engine.path}: GPU pre-processing writes float32 or float16 inputs, all of one "
                             f"type; the plan's inputs are {', '.join(sorted(str(k) for k in kinds))}")
        return GpuYuvConverter(self.kernels, runner.cuda, matrix=self.options.matrix, mean=self.mean, std=self.std,
                               size=self.options.analysis_size, dtype=dtype)

    def _fill(self, prepared: list[FramePair], addresses: dict[str, int]) -> None:
        """Write every input of the batch (called by ``infer_device`` with the runner's context current)."""
        if self._converter is None:
            self._converter = self._make_converter()
        ref, dist, ref_prev, dist_prev = self.model.inputs
        height, width = prepared[0].ref.y.shape
        nbytes = self._converter.output_nbytes(width, height)
        for row, pair in enumerate(prepared):
            offset = row * nbytes
            for slot, (current, previous, cur_name, prev_name) in enumerate((
                    (pair.ref, pair.ref_prev, ref, ref_prev), (pair.dist, pair.dist_prev, dist, dist_prev))):
                cur_out, prev_out = addresses[cur_name] + offset, addresses[prev_name] + offset
                if previous.index == current.index:  # the first frame is its own predecessor
                    self._place(slot, current, cur_out, nbytes)
                    self._copy(prev_out, cur_out, nbytes)
                else:
                    self._place(slot, previous, prev_out, nbytes, keep=False)
                    self._place(slot, current, cur_out, nbytes)

    def _copy(self, destination: int, source: int, nbytes: int) -> None:
        runner = self._device_runner
        runner.cuda.memcpy_dtod_async(int(destination), int(source), nbytes, runner.stream)

    def _place(self, slot: int, frame: Frame, out: int, nbytes: int, keep: bool = True) -> None:
        """Write ``frame`` of video ``slot`` converted at ``out``: a device copy of the kept frame if it is
        that frame, else upload and convert it (and with ``keep``, keep it for the next pair)."""
        converted = self._converted[slot]
        if converted is not None and converted.index == frame.index and converted.nbytes == nbytes:
            self._copy(out, converted.buffer, nbytes)
            return
        self._converter.convert(frame, out, self._device_runner.stream, self.ranges[slot])
        if keep:
            if converted is None or converted.nbytes != nbytes:
                if converted is not None:  # a copy queued from it may still be pending
                    self._device_runner.stream.synchronize()
                    converted.buffer.free()
                converted = self._converted[slot] = _Converted(None, self._device_runner.cuda.mem_alloc(nbytes),
                                                               nbytes)
            self._copy(converted.buffer, out, nbytes)
            converted.index = frame.index

    def _release_device(self) -> None:
        runner = self._device_runner
        allocated = [c for c in self._converted if c is not None]
        if self._converter is None and not allocated:
            return
        with runner.device_context():
            if runner.stream is not None:
                runner.stream.synchronize()
            for converted in allocated:
                converted.buffer.free()
            if self._converter is not None:
                self._converter.close()
        self._converter, self._converted = None, [None, None]

    def __exit__(self, *exc_info) -> None:
        try:
            self._release_device()
        finally:
            super().__exit__(*exc_info)
