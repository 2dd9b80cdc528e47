"""Fuzz raw planar YUV 4:2:0 (``vqa_rt.runtime.frames.video``): ``open_raw``'s size checks, the reader and
``split_planes`` (a 10-bit sample above 1023 is an InputError).

Input: one flags byte, width and height as little-endian signed 32-bit integers, then the file. Flags:
bit 0, a regular file (size known) rather than a stream; bit 1, yuv420p10le instead of yuv420p; bit 2, no
width given; bit 3, no height given; bit 4, a frame rate given (30000/1001). The file is read as
``open_video`` reads one that is not Y4M or compressed: its first 10 bytes as the head, then the rest.
"""

from __future__ import annotations

import io
import struct
import sys
from fractions import Fraction

import atheris
from _fuzz_common import INSTRUMENT, main, read_every_frame

with atheris.instrument_imports(include=INSTRUMENT):
    from vqa_rt.runtime.frames.video import open_raw
    from vqa_rt.runtime.frames.y4m import Y4M_MAGIC

_HEADER = struct.Struct("<Bii")


def TestOneInput(data: bytes) -> None:
    if len(data) < _HEADER.size:
        return
    flags, width, height = _HEADER.unpack_from(data)
    body = data[_HEADER.size:]
    stream = io.BytesIO(body)
    head = stream.read(len(Y4M_MAGIC))
    read_every_frame(lambda: open_raw(stream, "fuzz.yuv", len(body) if flags & 1 else None,
                                      None if flags & 4 else width, None if flags & 8 else height,
                                      "yuv420p10le" if flags & 2 else "yuv420p", head,
                                      Fraction(30000, 1001) if flags & 16 else None))


if __name__ == "__main__":
    main(TestOneInput)
    sys.exit(0)
