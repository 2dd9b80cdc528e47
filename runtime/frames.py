"""Selected frames of one video or pairs of reference and distorted frames, and background
prefetch of any iterable."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator, TypeVar

from vqa_rt.errors import InputError

from .sampling import FrameSampling
from .video import Frame, VideoReader

T = TypeVar("T")


@dataclass
class FramePair:
    """A selected source frame of both videos and the source frame just before it
    (the frame itself for frame 0), whatever the sampling."""

    index: int
    ref: Frame
    dist: Frame
    ref_prev: Frame
    dist_prev: Frame


def paired_frames(ref: VideoReader, dist: VideoReader,
                  sampling: FrameSampling = FrameSampling()) -> Iterator[FramePair]:
    """Pairs of the source frames ``sampling`` selects. Sizes and known frame counts are
    checked before anything is read; streams of unknown length must end together. Every
    frame is read (streams cannot seek), so unselected frames cost I/O but no conversion.
    """
    rf, df = ref.format, dist.format
    if (rf.width, rf.height) != (df.width, df.height):
        raise InputError(f"reference {ref.name} is {rf.width}x{rf.height} but distorted "
                         f"{dist.name} is {df.width}x{df.height}: resolutions must match")
    counts = (ref.frame_count, dist.frame_count)
    fps = rf.fps or df.fps
    total = None if None in counts else min(counts)
    if total is not None:
        _check_counts(*counts, sampling, fps)
    return _pairs(ref, dist, sampling.indices(total, fps), sampling.skip)


def single_frames(reader: VideoReader, sampling: FrameSampling = FrameSampling()) -> Iterator[Frame]:
    """The source frames of one video that ``sampling`` selects."""
    total = reader.frame_count
    if total is not None and sampling.skip >= total:
        raise InputError(f"frame skip {sampling.skip} leaves no frames (the video has {total})")
    return _singles(reader, sampling.indices(total, reader.format.fps), sampling.skip)


def _check_counts(ref_count: int, dist_count: int, sampling: FrameSampling, fps) -> None:
    shorter = min(ref_count, dist_count)
    if ref_count != dist_count and (
            sampling.max_frames is None or sampling.count_selected(shorter, fps) < sampling.max_frames):
        raise InputError(f"reference has {ref_count} frames, distorted has {dist_count}: "
                         "they must match (or limit frames with --max-frames)")
    if sampling.skip >= shorter:
        raise InputError(f"frame skip {sampling.skip} leaves no frames (the videos have {shorter})")


def _pairs(ref: VideoReader, dist: VideoReader, wanted: Iterator[int], skip: int) -> Iterator[FramePair]:
    ref_frames, dist_frames = iter(ref), iter(dist)
    ref_prev = dist_prev = None
    target = next(wanted, None)
    selected = index = 0
    while target is not None:
        r, d = next(ref_frames, None), next(dist_frames, None)
        if r is None or d is None:
            if r is not d:
                ended = f"reference {ref.name}" if r is None else f"distorted {dist.name}"
                other = "distorted" if r is None else "reference"
                raise InputError(f"{ended} ended at frame {index} while the {other} video "
                                 "continues: frame counts must match")
            break
        if ref_prev is None:
            ref_prev, dist_prev = r, d
        if index == target:
            yield FramePair(index, r, d, ref_prev, dist_prev)
            selected += 1
            target = next(wanted, None)
        ref_prev, dist_prev = r, d
        index += 1
    if selected == 0:
        raise InputError(f"frame skip {skip} leaves no frames (the videos have {index})")


def _singles(reader: VideoReader, wanted: Iterator[int], skip: int) -> Iterator[Frame]:
    target = next(wanted, None)
    selected = 0
    for frame in reader:
        if target is None:
            break
        if frame.index == target:
            yield frame
            selected += 1
            target = next(wanted, None)
    if selected == 0:
        raise InputError(f"frame skip {skip} leaves no frames (the video is shorter)")


_DONE = object()


def prefetch(iterable: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Iterate ``iterable`` in a daemon thread, at most ``depth`` items ahead.

    The producer's exception is re-raised in the consumer. When the consumer stops
    early (the generator is closed or raises), the producer stops after its current
    item, closes the source iterator, and is joined.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[object, object]) -> bool:
        while not stop.is_set():
            try:
                items.put(entry, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        source = iter(iterable)
        try:
            for item in source:
                if not put((item, None)):
                    break
            else:
                put((_DONE, None))
        except BaseException as exc:  # handed to the consumer
            put((_DONE, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = items.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()
