"""Fuzz the Y4M stream header and frame parser (``vqa_rt.runtime.frames.y4m``).

Input: one flags byte, then the file. Flags: bit 0, a regular file (its size known, frames counted up
front) rather than a stream; bit 1, a width and height given (4x2); bit 2, a pixel format given
(yuv420p10le); bit 3, a frame rate given (25). The file is opened as ``open_video`` opens one that starts
with the Y4M magic, and every frame is read.
"""

from __future__ import annotations

import io
import sys
from fractions import Fraction

import atheris
from _fuzz_common import INSTRUMENT, main, read_every_frame

with atheris.instrument_imports(include=INSTRUMENT):
    from vqa_rt.runtime.frames.y4m import Y4M_MAGIC, open_y4m


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    flags, body = data[0], data[1:]
    stream = io.BytesIO(body)
    if stream.read(len(Y4M_MAGIC)) != Y4M_MAGIC:
        return  # not a Y4M stream: open_video would read it as raw YUV
    size = len(body) if flags & 1 else None
    width, height = (4, 2) if flags & 2 else (None, None)
    pix_fmt = "yuv420p10le" if flags & 4 else None
    fps = Fraction(25) if flags & 8 else None
    read_every_frame(lambda: open_y4m(stream, "fuzz.y4m", size, width, height, pix_fmt, fps))


if __name__ == "__main__":
    main(TestOneInput)
    sys.exit(0)
