"""Pairing of reference and distorted frames, and background prefetch of any iterable."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator, TypeVar

from vqa_rt.errors import InputError

from .video import Frame, VideoReader

T = TypeVar("T")


@dataclass
class FramePair:
    """A selected source frame of both videos and the source frame just before it
    (the frame itself for frame 0), whatever the skip and stride."""

    index: int
    ref: Frame
    dist: Frame
    ref_prev: Frame
    dist_prev: Frame


def paired_frames(ref: VideoReader, dist: VideoReader, frame_skip: int = 0,
                  frame_stride: int = 1, max_frames: int | None = None) -> Iterator[FramePair]:
    """Pairs of source frames ``frame_skip``, ``frame_skip + frame_stride``, ... (at most
    ``max_frames``). Sizes and known frame counts are checked before anything is read;
    streams of unknown length must end together. Every frame is read (streams cannot
    seek), so skipped frames cost I/O but no conversion.
    """
    if frame_skip < 0:
        raise InputError(f"frame skip must be 0 or more, got {frame_skip}")
    if frame_stride < 1:
        raise InputError(f"frame stride must be 1 or more, got {frame_stride}")
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max frames must be 1 or more, got {max_frames}")
    rf, df = ref.format, dist.format
    if (rf.width, rf.height) != (df.width, df.height):
        raise InputError(f"reference {ref.name} is {rf.width}x{rf.height} but distorted "
                         f"{dist.name} is {df.width}x{df.height}: resolutions must match")
    counts = (ref.frame_count, dist.frame_count)
    if None not in counts:
        _check_counts(*counts, frame_skip, frame_stride, max_frames)
    return _pairs(ref, dist, frame_skip, frame_stride, max_frames)


def _check_counts(ref_count: int, dist_count: int, skip: int, stride: int,
                  max_frames: int | None) -> None:
    if ref_count != dist_count:
        needed = None if max_frames is None else skip + (max_frames - 1) * stride + 1
        if needed is None or min(ref_count, dist_count) < needed:
            raise InputError(f"reference has {ref_count} frames, distorted has {dist_count}: "
                             "they must match (or limit frames with --max-frames)")
    if skip >= min(ref_count, dist_count):
        raise InputError(f"frame skip {skip} leaves no frames "
                         f"(the videos have {min(ref_count, dist_count)})")


def _pairs(ref: VideoReader, dist: VideoReader, skip: int, stride: int,
           max_frames: int | None) -> Iterator[FramePair]:
    ref_frames, dist_frames = iter(ref), iter(dist)
    ref_prev = dist_prev = None
    selected = index = 0
    while max_frames is None or selected < max_frames:
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
        if index >= skip and (index - skip) % stride == 0:
            yield FramePair(index, r, d, ref_prev, dist_prev)
            selected += 1
        ref_prev, dist_prev = r, d
        index += 1
    if selected == 0:
        raise InputError(f"frame skip {skip} leaves no frames (the videos have {index})")


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
