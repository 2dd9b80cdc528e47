"""Where a frame's quantization-step map comes from: an exported model or block activity.

A :class:`QSSource` turns decoded frames into QS maps of one value per 16x16 block
(``ceil(H/16)`` x ``ceil(W/16)``). ``prepare`` runs in the prefetch thread,
``qs`` in the caller's, as in scoring.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from vqa_rt.errors import ModelError
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.engines.session import ModelSession
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.video import Frame, VideoFormat
from vqa_rt.runtime.qpmaps.activity import activity_qs
from vqa_rt.runtime.qpmaps.conversion import grid_shape


class QSSource(abc.ABC):
    """Frames -> positive QS maps; a context manager around its resources."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """The ``model`` section of a summary: which method made the maps, and whether it is trained."""

    @abc.abstractmethod
    def prepare(self, frame: Frame) -> Any:
        """Per-frame work that can overlap inference."""

    @abc.abstractmethod
    def qs(self, prepared: Any) -> np.ndarray:
        """The frame's QS map, float (rows, cols), every value finite and positive."""

    def __enter__(self) -> QSSource:
        return self

    def __exit__(self, *exc_info) -> None:
        pass


class ModelQS(ModelSession, QSSource):
    """An exported ``qpmap`` model (a :class:`ModelSession` over the source video): YUV -> RGB as its
    metadata says -> QS, one value per 16x16 block."""

    def __init__(self, engine: Engine, options: FrameOptions, fmt: VideoFormat, device: str = "cpu", threads: int = 0):
        super().__init__(engine, options, (fmt,), device, threads)
        self.grid = grid_shape(fmt.width, fmt.height)

    def describe(self) -> dict[str, Any]:
        return {"method": "model", **super().describe()}

    def prepare(self, frame: Frame) -> np.ndarray:
        return self.to_input(frame)[None]

    def qs(self, prepared: np.ndarray) -> np.ndarray:
        output = self.runner.infer({self.model.inputs[0]: prepared})[self.model.outputs[0]]
        if output.shape != (1, 1, *self.grid):
            raise ModelError(f"{self.engine.path}: output of shape {output.shape}, expected {(1, 1, *self.grid)} "
                             "(one value per 16x16 block)")
        qs = output[0, 0]
        if not np.all(np.isfinite(qs) & (qs > 0)):
            raise ModelError(f"{self.engine.path}: QS map has values that are not finite and positive")
        return qs


class ActivityQS(QSSource):
    """The non-learned baseline: QS from luma high-pass activity (see :mod:`.activity`)."""

    def describe(self) -> dict[str, Any]:
        return {"method": "activity", "untrained": False,
                "description": "block high-pass luma activity (XPSNR high-pass, square-root masking)"}

    def prepare(self, frame: Frame) -> np.ndarray:
        return activity_qs(frame.y, frame.bit_depth)

    def qs(self, prepared: np.ndarray) -> np.ndarray:
        return prepared
