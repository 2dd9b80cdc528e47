"""Where a frame's quantization-step map comes from: an exported model or block activity.

A :class:`QSSource` turns decoded frames into QS maps of one value per 16x16 block
(``ceil(H/16)`` x ``ceil(W/16)``). ``prepare`` runs in the prefetch thread,
``qs`` in the caller's, as in scoring.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from vqa_rt.errors import InputError, ModelError

from vqa_rt.runtime.qpmaps.activity import activity_qs
from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb
from vqa_rt.runtime.engines.runners import open_runner
from vqa_rt.runtime.engines.metadata import ModelInfo
from vqa_rt.runtime.qpmaps.conversion import grid_shape
from vqa_rt.runtime.frames.video import Frame, VideoFormat


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

    def __enter__(self) -> "QSSource":
        return self

    def __exit__(self, *exc_info) -> None:
        pass


class ModelQS(QSSource):
    """An exported ``qpmap`` model on a runner: YUV -> RGB (as its metadata says) -> QS."""

    def __init__(self, info: ModelInfo, fmt: VideoFormat, matrix: str = "bt709",
                 color_range: str | None = None, device: str = "cpu", threads: int = 0):
        if min(fmt.width, fmt.height) < info.min_size:
            raise InputError(f"frames of {fmt.width}x{fmt.height} are below the model's minimum of "
                             f"{info.min_size} pixels per side")
        self.info, self.matrix = info, matrix
        self.color_range = color_range or fmt.color_range or "limited"
        self.grid = grid_shape(fmt.width, fmt.height)
        self.mean = np.asarray(info.preprocess["mean"], np.float32)
        self.std = np.asarray(info.preprocess["std"], np.float32)
        self.runner = open_runner(info.path, device=device, threads=threads)

    def describe(self) -> dict[str, Any]:
        return {
            "method": "model",
            "path": self.info.path,
            "kind": self.info.kind,
            "backend": self.runner.name,
            "untrained": self.info.untrained,
            "exported_by": self.info.metadata.get("version"),
            "config": self.info.metadata.get("config"),
        }

    def prepare(self, frame: Frame) -> np.ndarray:
        return normalize(yuv_to_rgb(frame, self.matrix, self.color_range), self.mean, self.std)[None]

    def qs(self, prepared: np.ndarray) -> np.ndarray:
        output = self.runner.infer({self.info.inputs[0]: prepared})[self.info.outputs[0]]
        if output.shape != (1, 1, *self.grid):
            raise ModelError(f"{self.info.path}: output of shape {output.shape}, expected {(1, 1, *self.grid)} "
                             "(one value per 16x16 block)")
        qs = output[0, 0]
        if not np.all(np.isfinite(qs) & (qs > 0)):
            raise ModelError(f"{self.info.path}: QS map has values that are not finite and positive")
        return qs

    def __enter__(self) -> "ModelQS":
        self.runner.activate()
        return self

    def __exit__(self, *exc_info) -> None:
        self.runner.deactivate()


class ActivityQS(QSSource):
    """The non-learned baseline: QS from luma high-pass activity (see :mod:`.activity`)."""

    def describe(self) -> dict[str, Any]:
        return {"method": "activity", "untrained": False,
                "description": "block high-pass luma activity (XPSNR high-pass, square-root masking)"}

    def prepare(self, frame: Frame) -> np.ndarray:
        return activity_qs(frame.y, frame.bit_depth)

    def qs(self, prepared: np.ndarray) -> np.ndarray:
        return prepared
