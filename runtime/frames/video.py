"""Video frames and their format, the streaming reader every source is, and raw planar YUV 4:2:0.

Memory is constant whatever the length: each frame is read into its own buffer and
nothing is kept between frames. A 10-bit frame with a sample above 1023 (invalid in
yuv420p10le: typically 8-bit data read as 10-bit) is refused, naming the frame and the
plane. Frame numbers in messages are
0-based, like :attr:`Frame.index`. Every bad input raises :class:`InputError` naming the file.
Y4M is in :mod:`.y4m`, ffmpeg-decoded containers in :mod:`.decode`; :func:`.sources.open_video`
picks one.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO, Iterator

import numpy as np

from vqa_rt.errors import InputError

PIX_FMTS = ("yuv420p", "yuv420p10le")
BIT_DEPTHS = {"yuv420p": 8, "yuv420p10le": 10}
STDIN = "-"
STDIN_NAME = "<stdin>"


@dataclass(frozen=True)
class VideoFormat:
    """Geometry and sample format of a video; ``fps``/``color_range`` None when unknown."""

    width: int
    height: int
    bit_depth: int
    fps: Fraction | None
    color_range: str | None
    pix_fmt: str

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame's samples (Y, then U, then V)."""
        return self.width * self.height * 3 // 2 * (1 if self.bit_depth == 8 else 2)


@dataclass
class Frame:
    """One frame's planes: uint8 for 8-bit, uint16 for 10-bit; U and V are half size."""

    index: int
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bit_depth: int


class VideoReader:
    """A single-pass stream of :class:`Frame` s of one :class:`VideoFormat`.

    ``frame_count`` is known up front for regular files and None for stdin and FIFOs.
    """

    def __init__(self, stream: BinaryIO, name: str, fmt: VideoFormat,
                 frame_count: int | None, head: bytes = b""):
        self.name = name
        self.format = fmt
        self.frame_count = frame_count
        self._stream = stream
        self._head = head  # bytes read for format detection that belong to frame 0
        self._iterated = False
        self._limit = sys.maxsize

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError(f"{self.name}: a VideoReader can be iterated only once")
        self._iterated = True
        return self._frames()

    def limit(self, frames: int) -> None:
        """Read at most ``frames`` frames (before iterating)."""
        self._limit = frames
        if self.frame_count is not None:
            self.frame_count = min(self.frame_count, frames)

    def _frames(self) -> Iterator[Frame]:
        index = 0
        while index < self._limit and (buf := self._read_frame(index)) is not None:
            yield split_planes(buf, self.format, index, self.name)
            index += 1
        if index == 0:
            raise InputError(f"{self.name}: has no frames")

    def _read_frame(self, index: int) -> np.ndarray | None:
        """The next frame's bytes, or None at the end of the stream."""
        raise NotImplementedError

    def _read_samples(self, index: int, allow_eof: bool) -> np.ndarray | None:
        try:
            buf = np.empty(self.format.frame_bytes, np.uint8)
        except MemoryError:
            raise InputError(f"{self.name}: a {self.format.width}x{self.format.height} {self.format.pix_fmt} frame "
                             f"({self.format.frame_bytes} bytes) does not fit in memory") from None
        got = min(len(self._head), buf.size)  # a frame smaller than the head leaves the rest to the next frame
        buf[:got] = np.frombuffer(self._head[:got], np.uint8)
        self._head = self._head[got:]
        view = memoryview(buf)
        while got < buf.size and (n := self._stream.readinto(view[got:])):
            got += n
        if got == 0 and allow_eof:
            return None
        if got < buf.size:
            raise truncated_frame(self.name, index, got, buf.size)
        return buf

    def close(self) -> None:
        """Close the underlying file (stdin is left open)."""
        if self.name != STDIN_NAME:
            self._stream.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()



class RawReader(VideoReader):
    def _read_frame(self, index: int) -> np.ndarray | None:
        return self._read_samples(index, allow_eof=True)




def open_stream(path: str, name: str) -> tuple[BinaryIO, int | None]:
    """The binary stream and, for a regular file, its size."""
    if path == STDIN:
        return sys.stdin.buffer, None
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{name}: is a directory, not a video file")
        stream = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except OSError as e:
        raise InputError(f"{name}: cannot open: {e.strerror}") from None
    return stream, st.st_size if stat.S_ISREG(st.st_mode) else None



def given_rate(name: str, fps: float) -> Fraction:
    if not fps > 0:
        raise InputError(f"{name}: frame rate must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)



def open_raw(stream: BinaryIO, name: str, size: int | None, width: int | None,
              height: int | None, pix_fmt: str, head: bytes, fps: Fraction | None) -> VideoReader:
    if width is None or height is None:
        raise InputError(f"{name}: raw YUV input needs width and height (--width, --height)")
    check_dimensions(name, width, height)
    fmt = VideoFormat(width, height, BIT_DEPTHS[pix_fmt], fps, None, pix_fmt)
    count = None
    if size is not None:
        count, rest = divmod(size, fmt.frame_bytes)
        if rest:
            raise InputError(
                f"{name}: size {size} bytes is not a whole number of {width}x{height} "
                f"{pix_fmt} frames ({fmt.frame_bytes} bytes each): "
                f"{count} whole frames and {rest} bytes remain")
    return RawReader(stream, name, fmt, count, head=head)



MAX_SIDE = 32768  # largest width or height read: beyond it, a size is a corrupt header or a wrong --width


def check_dimensions(name: str, width: int, height: int) -> None:
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise InputError(f"{name}: width and height must be positive and even for 4:2:0, "
                         f"got {width}x{height}")
    if max(width, height) > MAX_SIDE:
        raise InputError(f"{name}: width and height must be at most {MAX_SIDE}, got {width}x{height}")



def truncated_frame(name: str, index: int, got: int, expected: int) -> InputError:
    return InputError(f"{name}: frame {index} is truncated ({got} of {expected} bytes)")



MAX_10BIT = 1023


def split_planes(buf: np.ndarray, fmt: VideoFormat, index: int, name: str) -> Frame:
    """One frame's Y, U and V planes from its bytes; a 10-bit frame with a sample above 1023 is an
    :class:`InputError` naming the first such plane (one ``max`` over the frame: it costs little)."""
    samples = buf if fmt.bit_depth == 8 else buf.view("<u2").astype(np.uint16, copy=False)
    w, h = fmt.width, fmt.height
    luma, chroma = w * h, w * h // 4
    frame = Frame(index=index,
                  y=samples[:luma].reshape(h, w),
                  u=samples[luma:luma + chroma].reshape(h // 2, w // 2),
                  v=samples[luma + chroma:].reshape(h // 2, w // 2),
                  bit_depth=fmt.bit_depth)
    if fmt.bit_depth == 10 and samples.max() > MAX_10BIT:
        plane, values = next((p, v) for p, v in zip("YUV", (frame.y, frame.u, frame.v)) if v.max() > MAX_10BIT)
        raise InputError(f"{name}: frame {index}, plane {plane}: sample {int(values.max())} is above {MAX_10BIT}, "
                         f"outside 10-bit range (is this 8-bit video read as {fmt.pix_fmt}?)")
    return frame
