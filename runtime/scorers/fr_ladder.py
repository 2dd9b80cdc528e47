"""The FR model scoring several distorted renditions of one reference in one call per frame: its ladder graph
(:mod:`vqa_rt.runtime.engines.ladder_graph`) on ONNX Runtime, the reference's frames converted and its
features computed once for all renditions."""

from __future__ import annotations

import numpy as np

from vqa_rt.runtime.engines.backends.base import Runner
from vqa_rt.runtime.engines.backends.onnxrt import OnnxRuntimeRunner
from vqa_rt.runtime.engines.ladder_graph import ladder_graph
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.selection import Step
from vqa_rt.runtime.frames.video import Frame, VideoFormat
from vqa_rt.runtime.scorers.fr import FRScorer


class LadderFRScorer(FRScorer):
    """An FR ONNX model on its ladder graph. ``formats`` and ``roles`` are the reference's, then each
    rendition's; :meth:`prepare` takes a pipeline :class:`Step` holding every video's frame, and each frame's
    metrics are a list, one dict per rendition."""

    def __init__(self, engine: Engine, options: FrameOptions, formats: tuple[VideoFormat, ...], device: str = "cpu",
                 threads: int = 0, *, roles: tuple[str, ...]):
        super().__init__(engine, options, formats, device, threads)
        self.roles = roles
        width, height = self.frame_size
        self._batch_shape = (len(roles) - 1, 3, int(height), int(width))
        self._renditions: tuple[int, np.ndarray] | None = None  # the last frame index converted, its batch

    def open_runner(self, engine: Engine, device: str, threads: int) -> Runner:
        return OnnxRuntimeRunner(engine.path, device, threads, rewrite=ladder_graph)

    def _rendition_batch(self, frames: dict[str, Frame]) -> np.ndarray:
        """Every rendition's frame converted straight into one (renditions, 3, H, W) batch; the last batch
        again when it holds these frames (a step's previous frames are the step before's frames)."""
        index = frames[self.roles[1]].index
        if self._renditions is not None and self._renditions[0] == index:
            return self._renditions[1]
        batch = np.empty(self._batch_shape, np.float32)
        for slot in range(1, len(self.roles)):
            self.to_input(frames[self.roles[slot]], slot, out=batch[slot - 1])
        self._renditions = (index, batch)
        return batch

    def prepare(self, step: Step) -> tuple[np.ndarray, ...]:
        # The previous frames first, so the caches keep the current ones for the next step.
        reference = self.roles[0]
        ref_prev, dist_prev = self._convert(0, step.previous[reference]), self._rendition_batch(step.previous)
        ref, dist = self._convert(0, step.frames[reference]), self._rendition_batch(step.frames)
        return ref[None], dist, ref_prev[None], dist_prev

    def score_batch(self, prepared: list[tuple[np.ndarray, ...]]) -> list[list[dict[str, float]]]:
        metrics = []
        for feed in prepared:
            values = self.runner.infer(dict(zip(self.model.inputs, feed)))
            metrics.append([{name: float(values[name][row]) for name in self.model.outputs}
                            for row in range(len(self.roles) - 1)])
        return metrics
