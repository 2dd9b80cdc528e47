"""The NR (VLM) model as a frame scorer: frames of one video -> score, level probabilities and logits.

Each frame's metrics are ``score`` (the model's scale, Q-Align 1..5), ``p_<word>`` and
``logit_<word>``, the probability and logit of each level word. A clip engine (``frames`` > 1 in its
metadata) scores each run of that many selected frames in one prompt; its frames carry the clip's
results and ``clip``, the clip's number. The video's score follows the chosen protocol
(:mod:`.nr_protocols`).
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
from vqa_rt.runtime.scorers.nr_protocols import video_score

PROBS_OUTPUT, LOGITS_OUTPUT = "level_probs", "level_logits"


def _preprocessor(engine: Engine, options: FrameOptions, fmt: VideoFormat) -> NRPreprocessor:
    return NRPreprocessor(engine.model.preprocess, options.matrix, options.color_range_of(fmt))


def frame_inputs(engine: Engine, video: VideoInput, options: FrameOptions) -> tuple[list[int], np.ndarray]:
    """The frames of ``video`` that ``options`` select (by default the engine's: 1 per second): their
    indices and the model's input batch, ``(N, 3, S, S)`` (a clip engine's: ``(N / F, F, 3, S, S)``)."""
    options = options.with_default_sampling(engine.default_sampling)
    with video.open() as reader:
        preprocess = _preprocessor(engine, options, reader.format)
        frames = [(frame.index, preprocess(frame)) for frame in single_frames(reader, options.sampling())]
    batch, clip = np.stack([array for _, array in frames]), clip_frames(engine)
    if len(frames) % clip:
        raise InputError(f"{video.path}: {len(frames)} frames selected for an engine that scores clips of {clip} "
                         f"frames; select a multiple of {clip}")
    return [index for index, _ in frames], batch.reshape(-1, clip, *batch.shape[1:]) if clip > 1 else batch


def level_metrics(engine: Engine, prefix: str = "p_") -> list[str]:
    """Names of the per-frame level probabilities (``p_<word>``) or logits (``logit_``) in the model's level order."""
    return [f"{prefix}{level['word']}" for level in engine.model.metadata["levels"]]


def clip_frames(engine: Engine) -> int:
    """Frames per prompt of an NR engine (1: frames are scored alone)."""
    return int(engine.model.metadata.get("frames", 1))


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
        self.levels, self.logits = level_metrics(engine), level_metrics(engine, "logit_")
        self.frames, self.protocol = clip_frames(engine), options.nr_protocol
        self.waiting: list[np.ndarray] = []  # frames of a clip not yet complete
        self.clips = 0

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "levels": self.model.metadata["levels"], "prompt": self.model.metadata["prompt"],
                "frames_per_prompt": self.frames}

    def prepare(self, frame: Frame) -> np.ndarray:
        return self.preprocess(frame)

    def score_batch(self, prepared: list[np.ndarray]) -> list[dict[str, float]]:
        if self.frames == 1:
            return self._infer(np.stack(prepared))
        self.waiting.extend(prepared)
        complete = len(self.waiting) // self.frames * self.frames
        if not complete:
            return []
        clips = np.stack(self.waiting[:complete]).reshape(-1, self.frames, *self.waiting[0].shape)
        del self.waiting[:complete]
        metrics = []
        for values in self._infer(clips):
            metrics += [{**values, "clip": float(self.clips)} for _ in range(self.frames)]
            self.clips += 1
        return metrics

    def finish(self) -> list[dict[str, float]]:
        if self.waiting:
            raise InputError(f"{self.engine.path}: scores clips of {self.frames} frames and {len(self.waiting)} "
                             f"selected frames are left over; select a multiple of {self.frames} frames "
                             f"(--sample-frames {self.frames} by default)")
        return []

    def _infer(self, batch: np.ndarray) -> list[dict[str, float]]:
        values = self.runner.infer({self.model.inputs[0]: batch})
        scores, probs, logits = values[self.model.outputs[0]], values[PROBS_OUTPUT], values[LOGITS_OUTPUT]
        return [{self.model.outputs[0]: float(scores[row]), **dict(zip(self.levels, map(float, probs[row]))),
                 **dict(zip(self.logits, map(float, logits[row])))} for row in range(len(batch))]

    def summary(self, frames: list[dict[str, float]]) -> dict[str, Any] | None:
        if not frames:
            return None
        scale = self.model.score_scale
        return video_score(self.protocol, frames, self.model.outputs[0], self.model.metadata["levels"],
                           (scale["min"], scale["max"]))
