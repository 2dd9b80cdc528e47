"""The NR (VLM) model as a frame scorer: frames of one video -> score and level probabilities.

Each frame's metrics are ``score`` (the model's scale, Q-Align 1..5) and ``p_<word>``,
the probability of each level word. Pooled, the mean of ``score`` is the video's
score: it equals the score of the mean level probabilities (the pooled means of the
``p_*``), because the score is linear in them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vqa_rt.errors import InputError

from vqa_rt.runtime.frames.selection import single_frames
from vqa_rt.runtime.engines.metadata import ModelInfo
from vqa_rt.runtime.scorers.nr_preprocess import NRPreprocessor
from vqa_rt.runtime.scorers.base import ModelScorer
from vqa_rt.runtime.frames.video import Frame, VideoFormat

PROBS_OUTPUT = "level_probs"


def _preprocessor(info: ModelInfo, options, fmt: VideoFormat) -> NRPreprocessor:
    return NRPreprocessor(info.preprocess, options.matrix, options.color_range or fmt.color_range or "limited")


def frame_inputs(info: ModelInfo, video, options) -> tuple[list[int], np.ndarray]:
    """The frames of ``video`` (a ``VideoInput``) that ``options`` (``ScoreOptions``) select, by default
    1 per second: their indices and the model's input batch ``(N, 3, S, S)``."""
    options = options.with_default_sampling(info)
    with video.open() as reader:
        preprocess = _preprocessor(info, options, reader.format)
        frames = [(frame.index, preprocess(frame)) for frame in single_frames(reader, options.sampling())]
    return [index for index, _ in frames], np.stack([array for _, array in frames])


def level_metrics(info: ModelInfo) -> list[str]:
    """Names of the per-frame level probabilities: ``p_<word>`` in the model's level order."""
    return [f"p_{level['word']}" for level in info.metadata["levels"]]


class NRScorer(ModelScorer):
    """An exported NR model on a runner; frames are pre-processed in the prefetch thread."""

    takes_reference = False

    def __init__(self, info: ModelInfo, options, formats: tuple[VideoFormat], device: str = "cpu", threads: int = 0):
        if options.analysis_size is not None:
            size = "x".join(map(str, info.preprocess["size"]))
            raise InputError(f"{info.path}: an NR model resizes frames to its own input ({size}); "
                             "--analysis-size does not apply")
        super().__init__(info, device, threads)
        self.preprocess = _preprocessor(info, options, formats[0])
        self.levels = level_metrics(info)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "levels": self.info.metadata["levels"], "prompt": self.info.metadata["prompt"]}

    def prepare(self, frame: Frame) -> np.ndarray:
        return self.preprocess(frame)

    def score_batch(self, prepared: list[np.ndarray]) -> list[dict[str, float]]:
        values = self.runner.infer({self.info.inputs[0]: np.stack(prepared)})
        scores, probs = values[self.info.outputs[0]], values[PROBS_OUTPUT]
        return [{self.info.outputs[0]: float(scores[row]), **dict(zip(self.levels, map(float, probs[row])))}
                for row in range(len(prepared))]
