"""YUV4MPEG2 (Y4M) streams: the stream header (size, rate, 4:2:0 8/10-bit colourspace, colour-range tag)
and FRAME-prefixed frames, from regular files (frames counted up front), FIFOs and stdin.
A stream is recognised by its ``YUV4MPEG2`` magic, not by the file name.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import BinaryIO, Callable

import numpy as np

from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.video import BIT_DEPTHS, VideoFormat, VideoReader, check_dimensions, truncated_frame

Y4M_MAGIC = b"YUV4MPEG2 "
_PIX_FMTS = {
    "420": "yuv420p",
    "420jpeg": "yuv420p",
    "420paldv": "yuv420p",
    "420mpeg2": "yuv420p",
    "420p10": "yuv420p10le",
}
_RANGES = {"FULL": "full", "LIMITED": "limited"}
_LINE_LIMIT = 4096  # longest Y4M stream or FRAME header line accepted
_PLAIN_FRAME = b"FRAME\n"


class Y4mReader(VideoReader):
    def _read_frame(self, index: int) -> np.ndarray | None:
        line = self._stream.readline(_LINE_LIMIT)
        if not line:
            return None
        _check_frame_header(line, self.name, index)
        return self._read_samples(index, allow_eof=False)



def open_y4m(stream: BinaryIO, name: str, size: int | None, width: int | None,
              height: int | None, pix_fmt: str | None, fps: Fraction | None) -> VideoReader:
    fmt, header_bytes = read_y4m_header(stream, name, width, height, pix_fmt, fps)
    count = None
    if size is not None:
        count = _count_frames(stream, name, fmt, header_bytes, size)
        if count == 0:
            raise InputError(f"{name}: has no frames")
    return Y4mReader(stream, name, fmt, count)



def read_y4m_header(stream: BinaryIO, name: str, width: int | None, height: int | None,
                     pix_fmt: str | None, fps: Fraction | None,
                     source: str = "the Y4M header") -> tuple[VideoFormat, int]:
    """The format in the stream header after the magic, with ``fps`` filling in a missing
    rate, and the header's length with its magic; given values must agree with ``source``."""
    line = stream.readline(_LINE_LIMIT)
    fmt = _parse_header(line, name)
    for what, given, actual in (("width", width, fmt.width), ("height", height, fmt.height),
                                ("pixel format", pix_fmt, fmt.pix_fmt), ("frame rate", fps, fmt.fps)):
        if given is not None and actual is not None and given != actual:
            raise InputError(f"{name}: {what} {given} was given but {source} says {actual}")
    if fmt.fps is None and fps is not None:
        fmt = dataclasses.replace(fmt, fps=fps)
    return fmt, len(Y4M_MAGIC) + len(line)



def _parse_header(line: bytes, name: str) -> VideoFormat:
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
            color_range = _RANGES.get(token.split("=", 1)[1])
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
    check_dimensions(name, *dims)
    colorspace = fields.get("C", "420jpeg")
    pix_fmt = _PIX_FMTS.get(colorspace)
    if pix_fmt is None:
        raise InputError(f"{name}: unsupported Y4M pixel format C{colorspace} "
                         f"(supported: {', '.join('C' + c for c in _PIX_FMTS)})")
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



def _check_frame_header(line: bytes, name: str, index: int) -> None:
    if not line.endswith(b"\n") and len(line) < _LINE_LIMIT:
        raise InputError(f"{name}: frame {index} is truncated (inside its FRAME header)")
    if not (line.startswith(b"FRAME") and line[5:6] in (b"\n", b" ") and line.endswith(b"\n")):
        raise InputError(f"{name}: frame {index} has a malformed FRAME header "
                         f"(found {line[:16]!r})")



def _count_frames(stream: BinaryIO, name: str, fmt: VideoFormat, start: int,
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
                raise truncated_frame(name, count, fmt.frame_bytes - (pos - size), fmt.frame_bytes)
            count += 1
    stream.seek(start)
    return count



def _read_at(stream: BinaryIO, pos: int, n: int) -> bytes:
    stream.seek(pos)
    return stream.read(n)
