"""Streaming readers for YUV 4:2:0 video: raw planar files, Y4M, FIFOs and stdin, and
containers or compressed streams decoded through ffmpeg (:mod:`.decode`).

Memory is constant whatever the length: each frame is read into its own buffer and
nothing is kept between frames. Y4M is recognised by its ``YUV4MPEG2`` magic, not by
the file name. 10-bit samples are returned as read: values above 1023 (invalid in
yuv420p10le) are neither masked nor reported. Frame numbers in messages are 0-based,
like :attr:`Frame.index`. Every bad input raises :class:`InputError` naming the file.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO, Callable, Iterator

import numpy as np

from vqa_rt.errors import InputError

PIX_FMTS = ("yuv420p", "yuv420p10le")
STDIN = "-"
_STDIN_NAME = "<stdin>"

BIT_DEPTHS = {"yuv420p": 8, "yuv420p10le": 10}
_Y4M_MAGIC = b"YUV4MPEG2 "
_Y4M_PIX_FMTS = {
    "420": "yuv420p",
    "420jpeg": "yuv420p",
    "420paldv": "yuv420p",
    "420mpeg2": "yuv420p",
    "420p10": "yuv420p10le",
}
_Y4M_RANGES = {"FULL": "full", "LIMITED": "limited"}
_LINE_LIMIT = 4096  # longest Y4M stream or FRAME header line accepted
_PLAIN_FRAME = b"FRAME\n"


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
            yield _split_planes(buf, self.format, index)
            index += 1
        if index == 0:
            raise InputError(f"{self.name}: has no frames")

    def _read_frame(self, index: int) -> np.ndarray | None:
        """The next frame's bytes, or None at the end of the stream."""
        raise NotImplementedError

    def _read_samples(self, index: int, allow_eof: bool) -> np.ndarray | None:
        buf = np.empty(self.format.frame_bytes, np.uint8)
        got = len(self._head)
        buf[:got] = np.frombuffer(self._head, np.uint8)
        self._head = b""
        view = memoryview(buf)
        while got < buf.size and (n := self._stream.readinto(view[got:])):
            got += n
        if got == 0 and allow_eof:
            return None
        if got < buf.size:
            raise _truncated(self.name, index, got, buf.size)
        return buf

    def close(self) -> None:
        """Close the underlying file (stdin is left open)."""
        if self.name != _STDIN_NAME:
            self._stream.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _RawReader(VideoReader):
    def _read_frame(self, index: int) -> np.ndarray | None:
        return self._read_samples(index, allow_eof=True)


class _Y4mReader(VideoReader):
    def _read_frame(self, index: int) -> np.ndarray | None:
        line = self._stream.readline(_LINE_LIMIT)
        if not line:
            return None
        _check_frame_header(line, self.name, index)
        return self._read_samples(index, allow_eof=False)


def open_video(path: str, width: int | None = None, height: int | None = None,
               pix_fmt: str | None = None, fps: float | None = None) -> VideoReader:
    """Open raw YUV or Y4M from a path, a FIFO, or stdin (``"-"``), or a container or
    compressed stream file (MP4, MKV, IVF, raw HEVC, …; see :mod:`.decode`) through ffmpeg.

    Raw input needs ``width`` and ``height`` (``pix_fmt`` defaults to yuv420p; ``fps``, the
    frame rate, is optional); for Y4M and decoded files they are read from the header or
    stream and, when given, must agree with it (``fps`` fills in a header without a rate).
    """
    name = _STDIN_NAME if path == STDIN else path
    rate = None if fps is None else _given_rate(name, fps)
    if pix_fmt is not None and pix_fmt not in PIX_FMTS:
        raise InputError(f"{name}: unsupported pixel format {pix_fmt!r} "
                         f"(supported: {', '.join(PIX_FMTS)})")
    stream, size = _open_stream(path, name)
    try:
        head = stream.read(len(_Y4M_MAGIC))
        if not head:
            raise InputError(f"{name}: is empty")
        if head == _Y4M_MAGIC:
            return _open_y4m(stream, name, size, width, height, pix_fmt, rate)
        if size is not None:
            from .decode import is_compressed, open_decoded  # it imports this module

            if is_compressed(path, head):
                stream.close()
                return open_decoded(path, width, height, pix_fmt, rate)
        if path.lower().endswith(".y4m"):
            raise InputError(f"{name}: malformed Y4M file: it does not start with 'YUV4MPEG2 '")
        return _open_raw(stream, name, size, width, height, pix_fmt or "yuv420p", head, rate)
    except BaseException:
        if path != STDIN:
            stream.close()
        raise


def _open_stream(path: str, name: str) -> tuple[BinaryIO, int | None]:
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


def _given_rate(name: str, fps: float) -> Fraction:
    if not fps > 0:
        raise InputError(f"{name}: frame rate must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def _open_raw(stream: BinaryIO, name: str, size: int | None, width: int | None,
              height: int | None, pix_fmt: str, head: bytes, fps: Fraction | None) -> VideoReader:
    if width is None or height is None:
        raise InputError(f"{name}: raw YUV input needs width and height (--width, --height)")
    _check_dimensions(name, width, height)
    fmt = VideoFormat(width, height, BIT_DEPTHS[pix_fmt], fps, None, pix_fmt)
    count = None
    if size is not None:
        count, rest = divmod(size, fmt.frame_bytes)
        if rest:
            raise InputError(
                f"{name}: size {size} bytes is not a whole number of {width}x{height} "
                f"{pix_fmt} frames ({fmt.frame_bytes} bytes each): "
                f"{count} whole frames and {rest} bytes remain")
    return _RawReader(stream, name, fmt, count, head=head)


def _open_y4m(stream: BinaryIO, name: str, size: int | None, width: int | None,
              height: int | None, pix_fmt: str | None, fps: Fraction | None) -> VideoReader:
    fmt, header_bytes = _read_y4m_header(stream, name, width, height, pix_fmt, fps)
    count = None
    if size is not None:
        count = _count_y4m_frames(stream, name, fmt, header_bytes, size)
        if count == 0:
            raise InputError(f"{name}: has no frames")
    return _Y4mReader(stream, name, fmt, count)


def _read_y4m_header(stream: BinaryIO, name: str, width: int | None, height: int | None,
                     pix_fmt: str | None, fps: Fraction | None,
                     source: str = "the Y4M header") -> tuple[VideoFormat, int]:
    """The format in the stream header after the magic, with ``fps`` filling in a missing
    rate, and the header's length with its magic; given values must agree with ``source``."""
    line = stream.readline(_LINE_LIMIT)
    fmt = _parse_y4m_header(line, name)
    for what, given, actual in (("width", width, fmt.width), ("height", height, fmt.height),
                                ("pixel format", pix_fmt, fmt.pix_fmt), ("frame rate", fps, fmt.fps)):
        if given is not None and actual is not None and given != actual:
            raise InputError(f"{name}: {what} {given} was given but {source} says {actual}")
    if fmt.fps is None and fps is not None:
        fmt = dataclasses.replace(fmt, fps=fps)
    return fmt, len(_Y4M_MAGIC) + len(line)


def _parse_y4m_header(line: bytes, name: str) -> VideoFormat:
    """Parse the stream header after the magic. I, A and unknown tags are ignored."""
    def malformed(what: str) -> InputError:
        return InputError(f"{name}: malformed Y4M header: {what}")

    if not line.endswith(b"\n"):
        raise malformed(f"no end of line within {_LINE_LIMIT} bytes")
    try:
        tokens = line[:-1].decode("ascii").split()
    except UnicodeDecodeError:
        raise malformed("it is not ASCII text") from None
    fields: dict[str, str] = {}
    color_range = None
    for token in tokens:
        if token.startswith("XCOLORRANGE="):
            color_range = _Y4M_RANGES.get(token.split("=", 1)[1])
            if color_range is None:
                raise malformed(f"unknown {token} (expected XCOLORRANGE=FULL or LIMITED)")
        elif token[0] != "X":
            fields[token[0]] = token[1:]
    dims = []
    for tag in "WH":
        value = fields.get(tag)
        if value is None:
            raise malformed(f"no {tag} ({'width' if tag == 'W' else 'height'}) field")
        if not value.isdigit():
            raise malformed(f"{tag}{value} is not a whole number")
        dims.append(int(value))
    _check_dimensions(name, *dims)
    colorspace = fields.get("C", "420jpeg")
    pix_fmt = _Y4M_PIX_FMTS.get(colorspace)
    if pix_fmt is None:
        raise InputError(f"{name}: unsupported Y4M pixel format C{colorspace} "
                         f"(supported: {', '.join('C' + c for c in _Y4M_PIX_FMTS)})")
    return VideoFormat(dims[0], dims[1], BIT_DEPTHS[pix_fmt],
                       _parse_rate(fields.get("F"), malformed), color_range, pix_fmt)


def _parse_rate(value: str | None,
                malformed: Callable[[str], InputError]) -> Fraction | None:
    """``F<num>:<den>``; None when absent or ``0:0`` (unknown)."""
    if value is None:
        return None
    num, sep, den = value.partition(":")
    if not (sep and num.isdigit() and den.isdigit()):
        raise malformed(f"frame rate F{value} is not of the form F<num>:<den>")
    if int(num) == 0 and int(den) == 0:
        return None
    if int(num) == 0 or int(den) == 0:
        raise malformed(f"frame rate F{value} is not a positive ratio")
    return Fraction(int(num), int(den))


def _check_dimensions(name: str, width: int, height: int) -> None:
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise InputError(f"{name}: width and height must be positive and even for 4:2:0, "
                         f"got {width}x{height}")


def _check_frame_header(line: bytes, name: str, index: int) -> None:
    if not line.endswith(b"\n") and len(line) < _LINE_LIMIT:
        raise InputError(f"{name}: frame {index} is truncated (inside its FRAME header)")
    if not (line.startswith(b"FRAME") and line[5:6] in (b"\n", b" ") and line.endswith(b"\n")):
        raise InputError(f"{name}: frame {index} has a malformed FRAME header "
                         f"(found {line[:16]!r})")


def _truncated(name: str, index: int, got: int, expected: int) -> InputError:
    return InputError(f"{name}: frame {index} is truncated ({got} of {expected} bytes)")


def _count_y4m_frames(stream: BinaryIO, name: str, fmt: VideoFormat, start: int,
                      size: int) -> int:
    """Frames in a regular Y4M file whose frame data starts at byte ``start``.

    When the size is a whole number of plain ``FRAME\\n`` frames and the first and last
    headers are plain, the count follows from the size; otherwise every header is read.
    """
    plain = len(_PLAIN_FRAME) + fmt.frame_bytes
    data = size - start
    if data > 0 and data % plain == 0 and all(
            _read_at(stream, pos, len(_PLAIN_FRAME)) == _PLAIN_FRAME
            for pos in (start, size - plain)):
        count = data // plain
    else:
        count, pos = 0, start
        while pos < size:
            stream.seek(pos)
            line = stream.readline(_LINE_LIMIT)
            _check_frame_header(line, name, count)
            pos += len(line) + fmt.frame_bytes
            if pos > size:
                raise _truncated(name, count, fmt.frame_bytes - (pos - size), fmt.frame_bytes)
            count += 1
    stream.seek(start)
    return count


def _read_at(stream: BinaryIO, pos: int, n: int) -> bytes:
    stream.seek(pos)
    return stream.read(n)


def _split_planes(buf: np.ndarray, fmt: VideoFormat, index: int) -> Frame:
    samples = buf if fmt.bit_depth == 8 else buf.view("<u2").astype(np.uint16, copy=False)
    w, h = fmt.width, fmt.height
    luma, chroma = w * h, w * h // 4
    return Frame(index=index,
                 y=samples[:luma].reshape(h, w),
                 u=samples[luma:luma + chroma].reshape(h // 2, w // 2),
                 v=samples[luma + chroma:].reshape(h // 2, w // 2),
                 bit_depth=fmt.bit_depth)
