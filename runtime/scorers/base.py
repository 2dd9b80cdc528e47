"""Frame scorers: what turns selected frame pairs into per-frame metrics.

The scoring pipeline (``scoring.py``) reads and pairs frames and drives one
:class:`FrameScorer`; ``prepare`` runs in the prefetch thread, ``score_batch`` in
the caller's. :class:`EngineScorer` runs an exported FR model through a runner (the NR
scorer is in ``nr_scorer.py``); the baselines (``baselines/``) are scorers too, and
``scorer_factory`` picks one by name.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb
from vqa_rt.runtime.engines.runners import open_runner
from vqa_rt.runtime.frames.selection import FramePair
from vqa_rt.runtime.engines.metadata import ModelInfo
from vqa_rt.runtime.frames.video import Frame, VideoFormat


class FrameScorer(abc.ABC):
    """Per-frame metrics for frame pairs (or, with ``takes_reference`` False, for the frames of
    one video); a context manager around its resources."""

    takes_reference = True

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

    def __enter__(self) -> "FrameScorer":
        return self

    def __exit__(self, *exc_info) -> None:
        pass


class ModelScorer(FrameScorer):
    """An exported model on a runner; subclasses turn frames into its inputs and its outputs into metrics."""

    def __init__(self, info: ModelInfo, device: str = "cpu", threads: int = 0):
        self.info = info
        self.runner = open_runner(info.path, device=device, threads=threads)

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.info.path,
            "kind": self.info.kind,
            "label": f"{self.info.kind.upper()} score",
            "metric": self.info.outputs[0],  # a model's first output is its quality score
            "backend": self.runner.name,
            "untrained": self.info.untrained,
            "score_scale": self.info.score_scale,
            "exported_by": self.info.metadata.get("version"),
            "config": self.info.metadata.get("config"),
            "quantization": (self.info.metadata.get("quantization") or {}).get("mode"),
        }

    def __enter__(self) -> "ModelScorer":
        self.runner.activate()
        return self

    def __exit__(self, *exc_info) -> None:
        self.runner.deactivate()


class EngineScorer(ModelScorer):
    """An exported FR model on a runner: YUV -> normalised RGB -> engine -> outputs as metrics.

    The previous frame's conversion is reused, so each source frame is converted once.
    """

    def __init__(self, info: ModelInfo, options, formats: tuple[VideoFormat, VideoFormat], device="cpu", threads=0):
        width, height = options.analysis_size or (formats[0].width, formats[0].height)
        if min(width, height) < info.min_size:
            raise InputError(
                f"analysis size {width}x{height} is below the model's minimum of {info.min_size} pixels per side"
                " (choose a larger --analysis-size)"
            )
        super().__init__(info, device, threads)
        self.options = options
        self.ranges = tuple(options.color_range or fmt.color_range or "limited" for fmt in formats)
        self.mean = np.asarray(info.preprocess["mean"], dtype=np.float32)
        self.std = np.asarray(info.preprocess["std"], dtype=np.float32)
        self._cache: list[tuple[int, np.ndarray] | None] = [None, None]

    def _convert(self, slot: int, frame: Frame) -> np.ndarray:
        cached = self._cache[slot]
        if cached is not None and cached[0] == frame.index:
            return cached[1]
        rgb = yuv_to_rgb(frame, self.options.matrix, self.ranges[slot], self.options.analysis_size)
        array = normalize(rgb, self.mean, self.std)
        self._cache[slot] = (frame.index, array)
        return array

    def prepare(self, pair: FramePair) -> tuple[np.ndarray, ...]:
        ref_prev, dist_prev = self._convert(0, pair.ref_prev), self._convert(1, pair.dist_prev)
        return self._convert(0, pair.ref), self._convert(1, pair.dist), ref_prev, dist_prev

    def score_batch(self, prepared: list[tuple[np.ndarray, ...]]) -> list[dict[str, float]]:
        feed = {name: np.stack([item[i] for item in prepared]) for i, name in enumerate(self.info.inputs)}
        values = self.runner.infer(feed)
        return [{name: float(values[name][row]) for name in self.info.outputs} for row in range(len(prepared))]
