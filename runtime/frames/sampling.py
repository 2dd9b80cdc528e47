"""Which source frames are scored: every Nth, N per second of video, or N evenly spaced.

Selection starts after ``skip`` frames and stops after ``max_frames``. By frame rate,
frame ``skip + floor(k * fps / rate)`` is taken for k = 0, 1, ... (the frame at the
start of each 1/rate-second step; each frame once when the rate exceeds the video's).
Evenly spaced, the frames after ``skip`` are cut into ``count`` equal runs and the middle
frame of each is taken (every frame when there are fewer than ``count``). Indices are
0-based source frame numbers.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

from vqa_rt.errors import InputError
from vqa_rt.runtime.checks import finite_number, whole_number

MAX_FRAMES = 2**62  # frame numbers and counts: beyond any video, within what Python's iterators index
MIN_RATE = 1e-6  # frames per second: a sampling rate is taken to 6 decimal places


def _rate(rate: float) -> Fraction:
    return Fraction(rate).limit_denominator(1_000_000)


@dataclass(frozen=True)
class FrameSampling:
    """At most one of ``stride``, ``rate`` and ``count``; none means every frame."""

    skip: int = 0
    stride: int | None = None
    rate: float | None = None  # frames per second of video time
    count: int | None = None  # evenly spaced frames
    max_frames: int | None = None

    def __post_init__(self) -> None:
        whole_number(self.skip, "frame skip", 0, MAX_FRAMES)
        if self.stride is not None:
            whole_number(self.stride, "frame stride", 1, MAX_FRAMES)
        if self.rate is not None:
            finite_number(self.rate, "sampling rate (frames per second)")
            if not self.rate > 0:
                raise InputError(f"sampling rate must be positive, got {self.rate} frames per second")
            if _rate(self.rate) == 0:
                raise InputError(f"sampling rate must be at least {MIN_RATE:g} frames per second, got {self.rate:g}")
        if self.count is not None:
            whole_number(self.count, "sample frames", 1, MAX_FRAMES)
        if self.max_frames is not None:
            whole_number(self.max_frames, "max frames", 1, MAX_FRAMES)
        if sum(value is not None for value in (self.stride, self.rate, self.count)) > 1:
            raise InputError("choose one of frame stride, sampling rate (frames per second) and sample frames")

    def indices(self, total: int | None, fps: Fraction | None) -> Iterator[int]:
        """The selected frame indices, ascending; endless for a stream of unknown length.

        ``total`` is the video's frame count (None: unknown), ``fps`` its frame rate (None: unknown).
        """
        if self.rate is not None and fps is None:
            raise InputError("sampling by frames per second needs the video's frame rate: it is in a Y4M "
                             "header; for raw YUV give it (--fps), or sample by count or stride")
        if self.count is not None and total is None:
            raise InputError("evenly spaced sample frames need the video's frame count: read a regular "
                             "file, not a stream, or sample by rate or stride")
        if self.count is not None:
            span = max(0, total - self.skip)
            steps = range(span) if span <= self.count else (
                (2 * k + 1) * span // (2 * self.count) for k in range(self.count))
        elif self.rate is not None:
            step = Fraction(fps) / _rate(self.rate)
            steps = itertools.count() if step <= 1 else (  # at or above the video's rate: every frame
                s for s, _ in itertools.groupby(math.floor(k * step) for k in itertools.count()))
        else:
            steps = (k * (self.stride or 1) for k in itertools.count())
        selected = itertools.takewhile(lambda i: total is None or i < total, (self.skip + s for s in steps))
        return itertools.islice(selected, self.max_frames)

    def count_selected(self, total: int | None, fps: Fraction | None) -> int | None:
        """How many frames :meth:`indices` yields; None when the video's length is unknown."""
        if total is None:
            return self.max_frames
        return sum(1 for _ in self.indices(total, fps))
