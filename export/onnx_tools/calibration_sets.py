"""The frames ``vqa-rt quantize`` calibrates and evaluates on, as model input feeds: an NR model's frames
of one video, an FR model's frame pairs of a manifest's rows (each row a clip of the fidelity report).

Calibration feeds (one frame or pair each, at most a given number spread evenly over the selected
frames) are held in memory; evaluation batches are read as the fidelity comparison runs them.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from vqa_rt.errors import InputError
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.selection import check_pair
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.pipeline.manifest import Manifest
from vqa_rt.runtime.scorers.fr import FRScorer, pair_reader
from vqa_rt.runtime.scorers.nr import frame_inputs

Feed = dict[str, np.ndarray]  # one model input batch, by input name
Batch = tuple[int | None, Feed]  # a feed and the clip it belongs to (None: frames of one video)


def single_feeds(name: str, frames: np.ndarray) -> list[Feed]:
    """A batch of frames as one-frame feeds of input ``name``."""
    return [{name: frames[i:i + 1]} for i in range(len(frames))]


def evenly_spaced(count: int, limit: int) -> list[int]:
    """``min(count, limit)`` distinct indices below ``count``, spread evenly from the first to the last."""
    return sorted(set(np.linspace(0, count - 1, min(count, limit)).round().astype(int).tolist()))


def _stacked(names: list[str], pairs: list[tuple[np.ndarray, ...]]) -> Feed:
    return {name: np.stack([pair[i] for pair in pairs]) for i, name in enumerate(names)}


class VideoFrames:
    """An NR model's frames of ``video`` that ``options`` select (all decoded when made)."""

    def __init__(self, engine: Engine, video: VideoInput, options: FrameOptions):
        if not isinstance(video, VideoInput):
            raise InputError(f"{engine.path}: an NR model is calibrated on a video, not a manifest")
        self.name, self.path = engine.model.inputs[0], video.path
        self.frames = frame_inputs(engine, video, options)[1]
        self.count = len(self.frames)

    def files(self) -> list[str]:
        return [self.path]

    def feeds(self, limit: int) -> list[Feed]:
        """At most ``limit`` one-frame feeds, spread evenly over the frames."""
        return single_feeds(self.name, self.frames[evenly_spaced(len(self.frames), limit)])

    def batches(self, batch_size: int) -> Iterator[Batch]:
        return ((None, {self.name: self.frames[i:i + batch_size]}) for i in range(0, len(self.frames), batch_size))


class ManifestPairs:
    """An FR model's frame pairs of every row of ``manifest`` that ``options`` select. Each row's videos are
    opened and checked when made (sizes, frame counts); ``count`` is None while a video's length is unknown."""

    def __init__(self, engine: Engine, manifest: Manifest, options: FrameOptions):
        if not isinstance(manifest, Manifest):
            raise InputError(f"{engine.path}: an FR model is calibrated on a manifest of (reference, distorted) "
                             "pairs, not a video")
        self.engine, self.manifest, self.path = engine, manifest, manifest.path
        self.options = options.with_default_sampling(engine.default_sampling)
        sampling, counts = self.options.sampling(), []
        for row in manifest.rows:
            with row.reference.open() as ref, row.distorted.open() as dist:
                fmt = ref.format
                engine.check_frame_size(*(self.options.analysis_size or (fmt.width, fmt.height)), FRScorer.size_hint)
                counts.append(sampling.count_selected(check_pair(ref, dist, sampling), fmt.fps or dist.format.fps))
        self.count = None if None in counts else sum(counts)

    def files(self) -> list[str]:
        return [video.path for row in self.manifest.rows for video in (row.reference, row.distorted)]

    def _pairs(self, wanted: set[int] | None = None) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
        """Each selected pair's row and model inputs (only the ``wanted`` pairs, by position: reading stops after
        the last)."""
        position, last = 0, max(wanted, default=-1) if wanted is not None else None
        for clip, row in enumerate(self.manifest.rows):
            with pair_reader(self.engine, row.reference, row.distorted, self.options) as (convert, pairs):
                for pair in pairs:
                    if last is not None and position > last:
                        return
                    if wanted is None or position in wanted:
                        yield clip, convert(pair)
                    position += 1

    def feeds(self, limit: int) -> list[Feed]:
        """At most ``limit`` one-pair feeds, spread evenly over the pairs (the first ``limit`` while a video's
        length is unknown)."""
        chosen = set(evenly_spaced(self.count, limit) if self.count is not None else range(limit))
        return [_stacked(self.engine.model.inputs, [pair]) for _, pair in self._pairs(chosen)]

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Batches of up to ``batch_size`` pairs of one row each."""
        waiting: list[tuple[np.ndarray, ...]] = []
        owner = None
        for clip, pair in self._pairs():
            if waiting and (len(waiting) == batch_size or owner != clip):
                yield owner, _stacked(self.engine.model.inputs, waiting)
                waiting = []
            owner = clip
            waiting.append(pair)
        if waiting:
            yield owner, _stacked(self.engine.model.inputs, waiting)


def input_set(engine: Engine, frames: VideoInput | Manifest, options: FrameOptions) -> VideoFrames | ManifestPairs:
    """The frames of a calibration or evaluation set, for ``engine``'s kind."""
    return ManifestPairs(engine, frames, options) if engine.kind == "fr" else VideoFrames(engine, frames, options)
