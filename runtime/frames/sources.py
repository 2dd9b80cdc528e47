"""Opening videos: one entry point that recognises raw YUV, Y4M (by its magic), FIFOs and stdin, and
containers or compressed streams (decoded through ffmpeg), and :class:`VideoInput`, a video to open.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from vqa_rt.errors import InputError
from vqa_rt.runtime.checks import finite_number
from vqa_rt.runtime.frames.decode import is_compressed, open_decoded
from vqa_rt.runtime.frames.video import PIX_FMTS, STDIN, STDIN_NAME, VideoReader, given_rate, open_raw, open_stream
from vqa_rt.runtime.frames.y4m import Y4M_MAGIC, open_y4m


def open_video(path: str, width: int | None = None, height: int | None = None,
               pix_fmt: str | None = None, fps: float | None = None) -> VideoReader:
    """Open raw YUV or Y4M from a path, a FIFO, or stdin (``"-"``), or a container or
    compressed stream file (MP4, MKV, IVF, raw HEVC, …; see :mod:`.decode`) through ffmpeg.

    Raw input needs ``width`` and ``height`` (``pix_fmt`` defaults to yuv420p; ``fps``, the
    frame rate, is optional); for Y4M and decoded files they are read from the header or
    stream and, when given, must agree with it (``fps`` fills in a header without a rate).
    """
    name = STDIN_NAME if path == STDIN else path
    rate = None if fps is None else given_rate(name, check_fps(name, fps))
    if pix_fmt is not None and pix_fmt not in PIX_FMTS:
        raise InputError(f"{name}: unsupported pixel format {pix_fmt!r} "
                         f"(supported: {', '.join(PIX_FMTS)})")
    stream, size = open_stream(path, name)
    try:
        head = stream.read(len(Y4M_MAGIC))
        if not head:
            raise InputError(f"{name}: is empty")
        if head == Y4M_MAGIC:
            return open_y4m(stream, name, size, width, height, pix_fmt, rate)
        if size is not None and is_compressed(path, head):
            stream.close()
            return open_decoded(path, width, height, pix_fmt, rate)
        if path.lower().endswith(".y4m"):
            raise InputError(f"{name}: malformed Y4M file: it does not start with 'YUV4MPEG2 '")
        return open_raw(stream, name, size, width, height, pix_fmt or "yuv420p", head, rate)
    except BaseException:
        if path != STDIN:
            stream.close()
        raise


MIN_FPS = 0.001  # frames per second: a given rate is kept to 1/1001 (NTSC rates are exact)


def check_fps(name: str, fps: object) -> float:
    """A frame rate given for a video (``--fps``, a manifest's ``fps``): a finite number of at least
    :data:`MIN_FPS` frames per second."""
    rate = finite_number(fps, f"{name}: frame rate", above=0)
    if rate < MIN_FPS:
        raise InputError(f"{name}: frame rate must be at least {MIN_FPS:g} frames per second, got {rate:g}")
    return rate


def check_stdin(inputs: dict[str, VideoInput]) -> None:
    """At most one video can come from stdin (``-``): its bytes are one stream."""
    piped = [role for role, video in inputs.items() if video is not None and video.path == STDIN]
    if len(piped) > 1:
        raise InputError(f"the {' and the '.join(piped)} video cannot both be read from stdin (-): "
                         "give at least one as a file or a FIFO")


@dataclass(frozen=True)
class VideoInput:
    """A video to read: a path (``-`` for stdin) and, for raw YUV, its geometry and frame rate."""

    path: str
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.fps is not None:
            check_fps(STDIN_NAME if self.path == STDIN else self.path, self.fps)

    def open(self) -> VideoReader:
        return open_video(self.path, self.width, self.height, self.pix_fmt, self.fps)


@contextlib.contextmanager
def open_inputs(inputs: dict[str, VideoInput]) -> Iterator[dict[str, VideoReader]]:
    """The videos, opened, by role."""
    check_stdin(inputs)
    with contextlib.ExitStack() as stack:
        yield {role: stack.enter_context(video.open()) for role, video in inputs.items()}
