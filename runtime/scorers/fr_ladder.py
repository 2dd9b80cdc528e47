"""The FR model scoring several distorted renditions of one reference in one call per frame: its ladder graph
(:mod:`vqa_rt.runtime.engines.ladder_graph`) on ONNX Runtime, the reference's frames converted and its
features computed once for all renditions."""

from __future__ import annotations

import numpy as np

from vqa_rt.runtime.engines.backends.base import Runner
from vqa_rt.runtime.engines.backends.onnxrt import OnnxRuntimeRunner
from vqa_rt.runtime.engines.ladder_graph import ladder_graph
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.selection import Step
from vqa_rt.runtime.scorers.fr import FRScorer


class LadderFRScorer(FRScorer):
    """An FR ONNX model on its ladder graph. ``formats`` and ``roles`` are the reference's, then each
    rendition's; :meth:`prepare` takes a pipeline :class:`Step` holding every video's frame, and each frame's
    metrics are a list, one dict per rendition."""

    def __init__(self, *args, roles: tuple[str, ...], **kwargs):
        super().__init__(*args, **kwargs)
        self.roles = roles

    def open_runner(self, engine: Engine, device: str, threads: int) -> Runner:
        return OnnxRuntimeRunner(engine.path, device, threads, rewrite=ladder_graph)

    def _frames(self, slot: int, step: Step) -> tuple[np.ndarray, np.ndarray]:
        """Video ``slot``'s frame of ``step`` and the frame before it, converted (the previous one first, so the
        cache keeps the current one for the next step)."""
        role = self.roles[slot]
        previous = self._convert(slot, step.previous[role])
        return self._convert(slot, step.frames[role]), previous

    def prepare(self, step: Step) -> tuple[np.ndarray, ...]:
        ref, ref_prev = self._frames(0, step)
        renditions = [self._frames(slot, step) for slot in range(1, len(self.roles))]
        return (ref[None], np.stack([frame for frame, _ in renditions]), ref_prev[None],
                np.stack([previous for _, previous in renditions]))

    def score_batch(self, prepared: list[tuple[np.ndarray, ...]]) -> list[list[dict[str, float]]]:
        metrics = []
        for feed in prepared:
            values = self.runner.infer(dict(zip(self.model.inputs, feed)))
            metrics.append([{name: float(values[name][row]) for name in self.model.outputs}
                            for row in range(len(self.roles) - 1)])
        return metrics
