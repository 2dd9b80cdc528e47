"""The frame scorer interface (what turns selected frame pairs, or one video's frames, into per-frame
metrics) and the base of the scorers that run an exported model.

The pipeline's score branch (:mod:`vqa_rt.runtime.pipeline.score`) drives one :class:`FrameScorer`;
``prepare`` runs in the prefetch thread, ``score_batch`` in the branch's worker. The FR model
(``fr``, ``fr_gpu``), the NR model (``nr``) and the baselines (``baselines/``) are scorers;
``factory`` makes the one an engine needs.
"""

from __future__ import annotations

import abc
from typing import Any

from vqa_rt.runtime.engines.session import ModelSession
from vqa_rt.runtime.frames.selection import FramePair


class FrameScorer(abc.ABC):
    """Per-frame metrics for frame pairs (or, for an engine that takes no reference, for the frames of
    one video); a context manager around its resources."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """The ``model`` section of the results (what scored, on which backend, on which scale)."""

    @abc.abstractmethod
    def prepare(self, pair: FramePair) -> Any:
        """Per-pair (or per-frame) work that can overlap inference (decoding is done; colour conversion etc.)."""

    @abc.abstractmethod
    def score_batch(self, prepared: list[Any]) -> list[dict[str, float]]:
        """Metrics for a batch of prepared pairs, in order.

        A scorer that needs the whole sequence may return fewer than it was given: the
        metrics still owed follow, in order, from later calls and :meth:`finish`.
        """

    def finish(self) -> list[dict[str, float]]:
        """Metrics still owed after the last batch, in order."""
        return []

    def summary(self, frames: list[dict[str, float]]) -> dict[str, Any] | None:
        """The video's own result from its frames' metrics, where pooling each metric is not it (NR protocols)."""
        return None

    def __enter__(self) -> FrameScorer:
        return self

    def __exit__(self, *exc_info) -> None:
        pass


class ModelScorer(ModelSession, FrameScorer):
    """An exported model scoring frames (see :class:`ModelSession`); its first output is its quality score."""

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "label": f"{self.model.kind.upper()} score",
            "metric": self.model.outputs[0],
            "score_scale": self.model.score_scale,
            "quantization": (self.model.metadata.get("quantization") or {}).get("mode"),
        }
