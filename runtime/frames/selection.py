"""Frames taken from one or more videos read side by side: each video's frame with the frame before it,
the frames a sampling selects, and the checks that videos can be read together."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator

from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.sampling import FrameSampling
from vqa_rt.runtime.frames.video import Frame, VideoReader


@dataclass
class FramePair:
    """A selected source frame of both videos and the source frame just before it
    (the frame itself for frame 0), whatever the sampling."""

    index: int
    ref: Frame
    dist: Frame
    ref_prev: Frame
    dist_prev: Frame


def single_frames(reader: VideoReader, sampling: FrameSampling = FrameSampling()) -> Iterator[Frame]:
    """The source frames of one video that ``sampling`` selects."""
    check_single(reader, sampling)
    wanted = sampling.indices(reader.frame_count, reader.format.fps)
    return (step.frames["video"] for step in select(frames_in_step({"video": reader}), wanted, sampling.skip))


def paired_frames(ref: VideoReader, dist: VideoReader,
                  sampling: FrameSampling = FrameSampling()) -> Iterator[FramePair]:
    """The frame pairs of a reference and a distorted video that ``sampling`` selects (checked with
    :func:`check_pair`)."""
    total = check_pair(ref, dist, sampling)
    wanted = sampling.indices(total, ref.format.fps or dist.format.fps)
    return map(pair_of, select(frames_in_step({"reference": ref, "distorted": dist}), wanted, sampling.skip))


def check_pair(ref: VideoReader, dist: VideoReader, sampling: FrameSampling) -> int | None:
    """Check that a reference and a distorted video can be paired as ``sampling`` reads them;
    the number of frames both have (None while a stream's length is unknown)."""
    rf, df = ref.format, dist.format
    if (rf.width, rf.height) != (df.width, df.height):
        raise InputError(f"reference {ref.name} is {rf.width}x{rf.height} but distorted "
                         f"{dist.name} is {df.width}x{df.height}: resolutions must match")
    counts = (ref.frame_count, dist.frame_count)
    if None in counts:
        return None
    shorter = min(counts)
    if counts[0] != counts[1] and (sampling.max_frames is None or sampling.count_selected(
            shorter, rf.fps or df.fps) < sampling.max_frames):
        raise InputError(f"reference has {counts[0]} frames, distorted has {counts[1]}: "
                         "they must match (or limit frames with --max-frames)")
    if sampling.skip >= shorter:
        raise InputError(f"frame skip {sampling.skip} leaves no frames (the videos have {shorter})")
    return shorter


def check_single(reader: VideoReader, sampling: FrameSampling) -> None:
    """Check that ``sampling`` selects frames of a video of known length."""
    total = reader.frame_count
    if total is not None and sampling.skip >= total:
        raise InputError(f"frame skip {sampling.skip} leaves no frames (the video has {total})")


@dataclass
class Step:
    """Frame ``index`` of each video (by role) and each video's frame before it (itself for frame 0)."""

    index: int
    frames: dict[str, Frame]
    previous: dict[str, Frame]


def pair_of(step: Step, reference: str = "reference", distorted: str = "distorted") -> FramePair:
    """The frames of a step's ``reference`` and ``distorted`` videos (by role) as a :class:`FramePair`."""
    return FramePair(step.index, step.frames[reference], step.frames[distorted], step.previous[reference],
                     step.previous[distorted])


def frames_in_step(readers: dict[str, VideoReader]) -> Iterator[Step]:
    """The videos' frames side by side, one :class:`Step` per frame index, until they end; the
    videos must end together (checked as they are read, for streams of unknown length)."""
    iterators = {role: iter(reader) for role, reader in readers.items()}
    previous: dict[str, Frame] = {}
    for index in itertools.count():
        frames = {role: next(frames, None) for role, frames in iterators.items()}
        ended = [role for role, frame in frames.items() if frame is None]
        if ended:
            if len(ended) < len(frames):
                role = ended[0]
                other = next(r for r in frames if r not in ended)
                raise InputError(f"{role} {readers[role].name} ended at frame {index} while the {other} "
                                 "video continues: frame counts must match")
            return
        previous = {role: previous.get(role, frame) for role, frame in frames.items()}
        yield Step(index, frames, previous)
        previous = frames


def select(steps: Iterator[Step], wanted: Iterator[int], skip: int) -> Iterator[Step]:
    """The steps whose index ``wanted`` (ascending) lists; reading stops after the last one."""
    target = next(wanted, None)
    selected = 0
    while target is not None and (step := next(steps, None)) is not None:
        if step.index == target:
            yield step
            selected += 1
            target = next(wanted, None)
    if selected == 0:
        raise InputError(f"frame skip {skip} leaves no frames (the video is shorter)")
