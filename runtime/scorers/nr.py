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
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.selection import single_frames
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.video import Frame, VideoFormat
from vqa_rt.runtime.scorers.base import ModelScorer
from vqa_rt.runtime.scorers.nr_preprocess import NRPreprocessor

PROBS_OUTPUT = "level_probs"


def _preprocessor(engine: Engine, options: FrameOptions, fmt: VideoFormat) -> NRPreprocessor:
    return NRPreprocessor(engine.model.preprocess, options.matrix, options.color_range_of(fmt))


def frame_inputs(engine: Engine, video: VideoInput, options: FrameOptions) -> tuple[list[int], np.ndarray]:
    """The frames of ``video`` that ``options`` select (by default the engine's: 1 per second): their
    indices and the model's input batch ``(N, 3, S, S)``."""
    options = options.with_default_sampling(engine.default_sampling)
    with video.open() as reader:
        preprocess = _preprocessor(engine, options, reader.format)
        frames = [(frame.index, preprocess(frame)) for frame in single_frames(reader, options.sampling())]
    return [index for index, _ in frames], np.stack([array for _, array in frames])


def level_metrics(engine: Engine) -> list[str]:
    """Names of the per-frame level probabilities: ``p_<word>`` in the model's level order."""
    return [f"p_{level['word']}" for level in engine.model.metadata["levels"]]


class NRScorer(ModelScorer):
    """An exported NR model on a runner; frames are pre-processed (resized to its square input) in the
    prefetch thread."""

    def __init__(self, engine: Engine, options: FrameOptions, formats: tuple[VideoFormat], device: str = "cpu",
                 threads: int = 0):
        if options.analysis_size is not None:
            size = "x".join(map(str, engine.model.preprocess["size"]))
            raise InputError(f"{engine.path}: an NR model resizes frames to its own input ({size}); "
                             "--analysis-size does not apply")
        super().__init__(engine, options, formats, device, threads)
        self.preprocess = _preprocessor(engine, options, formats[0])
        self.levels = level_metrics(engine)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "levels": self.model.metadata["levels"], "prompt": self.model.metadata["prompt"]}

    def prepare(self, frame: Frame) -> np.ndarray:
        return self.preprocess(frame)

    def score_batch(self, prepared: list[np.ndarray]) -> list[dict[str, float]]:
        values = self.runner.infer({self.model.inputs[0]: np.stack(prepared)})
        scores, probs = values[self.model.outputs[0]], values[PROBS_OUTPUT]
        return [{self.model.outputs[0]: float(scores[row]), **dict(zip(self.levels, map(float, probs[row])))}
                for row in range(len(prepared))]
