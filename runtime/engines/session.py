"""A model engine opened for frames: its runner and the runner's lifecycle, the model's minimum frame
size, the ``model`` section of results, and YUV frames converted to the normalised RGB planes its
metadata asks for. The FR and NR scorers and the QP-map model source are sessions."""

from __future__ import annotations

from typing import Any

import numpy as np

from vqa_rt.runtime.engines.backends.base import Runner
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.engines.runners import open_runner
from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.video import Frame, VideoFormat


class ModelSession:
    """``engine`` (a model) on a runner, fed frames of ``formats`` (one per video it reads) converted
    as ``options`` say; a context manager that activates and releases the runner.

    Frames reach the model at ``options.analysis_size`` or their own size, which must not be
    below the model's minimum (checked before the runner is opened).
    """

    size_hint = ""  # what the minimum-size error suggests

    def __init__(self, engine: Engine, options: FrameOptions, formats: tuple[VideoFormat, ...], device: str = "cpu",
                 threads: int = 0):
        self.frame_size = options.analysis_size or (formats[0].width, formats[0].height)  # (width, height) analysed
        engine.check_frame_size(*self.frame_size, self.size_hint)
        self.engine, self.model, self.options = engine, engine.model, options
        self.ranges = tuple(options.color_range_of(fmt) for fmt in formats)
        self.mean = np.asarray(self.model.preprocess["mean"], np.float32)
        self.std = np.asarray(self.model.preprocess["std"], np.float32)
        self.runner = self.open_runner(engine, device, threads)

    def open_runner(self, engine: Engine, device: str, threads: int) -> Runner:
        """The (not yet activated) runner of ``engine``."""
        return open_runner(engine, device=device, threads=threads)

    def to_input(self, frame: Frame, slot: int = 0, out: np.ndarray | None = None) -> np.ndarray:
        """``frame`` of video ``slot`` as the model takes it: (3, H, W) RGB at the analysis size, normalised
        (written into ``out`` if given)."""
        rgb = yuv_to_rgb(frame, self.options.matrix, self.ranges[slot], self.options.analysis_size, out)
        return normalize(rgb, self.mean, self.std)

    def describe(self) -> dict[str, Any]:
        """What ran: the model file and kind, the backend, whether its weights are trained and which they are,
        its origin."""
        return {
            "path": self.engine.path,
            "kind": self.model.kind,
            "backend": self.runner.name,
            "untrained": self.model.untrained,
            "weights": self.model.metadata.get("weights_source"),
            "exported_by": self.model.metadata.get("version"),
            "config": self.model.metadata.get("config"),
        }

    def __enter__(self):
        self.runner.activate()
        return self

    def __exit__(self, *exc_info) -> None:
        self.runner.deactivate()
