"""The FR model as a frame scorer: (reference, distorted) pairs and the frames before them -> the model's
normalised RGB inputs -> its outputs (``score``, ``spatial``, ``temporal``) as per-frame metrics."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np

from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.selection import FramePair, paired_frames
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.video import Frame
from vqa_rt.runtime.scorers.base import ModelScorer


class FRScorer(ModelScorer):
    """An exported FR model on a runner: YUV -> normalised RGB -> engine -> outputs as metrics.

    The previous frame's conversion is reused, so each source frame is converted once.
    """

    size_hint = " (choose a larger --analysis-size)"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cache: list[tuple[int, np.ndarray] | None] = [None] * len(self.ranges)  # per video: its last frame

    def _convert(self, slot: int, frame: Frame) -> np.ndarray:
        cached = self._cache[slot]
        if cached is not None and cached[0] == frame.index:
            return cached[1]
        array = self.to_input(frame, slot)
        self._cache[slot] = (frame.index, array)
        return array

    def prepare(self, pair: FramePair) -> tuple[np.ndarray, ...]:
        ref_prev, dist_prev = self._convert(0, pair.ref_prev), self._convert(1, pair.dist_prev)
        return self._convert(0, pair.ref), self._convert(1, pair.dist), ref_prev, dist_prev

    def score_batch(self, prepared: list[tuple[np.ndarray, ...]]) -> list[dict[str, float]]:
        feed = {name: np.stack([item[i] for item in prepared]) for i, name in enumerate(self.model.inputs)}
        values = self.runner.infer(feed)
        return [{name: float(values[name][row]) for name in self.model.outputs} for row in range(len(prepared))]


@contextlib.contextmanager
def pair_reader(engine: Engine, reference: VideoInput, distorted: VideoInput,
                options: FrameOptions) -> Iterator[tuple[Callable[[FramePair], tuple[np.ndarray, ...]],
                                                         Iterator[FramePair]]]:
    """The frame pairs ``options`` select, read as they are taken, and the function that converts one into the
    model's inputs (``ref``, ``dist``, ``ref_prev``, ``dist_prev``; each ``(3, H, W)``) as :class:`FRScorer`
    converts them for scoring."""
    options = options.with_default_sampling(engine.default_sampling)
    with reference.open() as ref, distorted.open() as dist:
        scorer = FRScorer(engine, options, (ref.format, dist.format))  # its runner is never activated
        yield scorer.prepare, paired_frames(ref, dist, options.sampling())
