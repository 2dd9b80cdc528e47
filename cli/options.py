"""Options several commands share, declared once as typer ``Annotated`` types (the default goes in each
command's signature), and the parser of ``WIDTHxHEIGHT`` sizes.

Only light modules are imported here (NumPy, OpenCV): ``vqa-rt --help`` loads neither ONNX, ONNX
Runtime, torch nor TensorRT.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.color import MATRICES, RANGES
from vqa_rt.runtime.frames.video import PIX_FMTS
from vqa_rt.runtime.qpmaps.conversion import GRIDS, PAPER_BASE_QPS, QP_RANGES
from vqa_rt.runtime.qpmaps.formats import FORMATS

# The video to read
Width = Annotated[int | None, typer.Option("--width", "-w", help="Frame width (raw YUV).")]
Height = Annotated[int | None, typer.Option("--height", "-h", help="Frame height (raw YUV).")]
PixFmt = Annotated[str | None, typer.Option(
    help=f"Pixel format of raw YUV: {' (default) or '.join(PIX_FMTS)}.")]
Fps = Annotated[float | None, typer.Option(
    help="Frame rate of raw YUV (Y4M headers carry it); for --sample-fps and NR's frames per second.")]

# How frames are converted
Matrix = Annotated[Literal[MATRICES], typer.Option(help="YUV->RGB matrix.")]
ColorRange = Annotated[Literal[RANGES] | None, typer.Option(
    "--range", help="YUV range (default: Y4M tag, else limited).")]
AnalysisSize = Annotated[str | None, typer.Option(
    help="Resize frames to WIDTHxHEIGHT before inference (FR models and baselines).")]

# Which frames are taken
FrameSkip = Annotated[int, typer.Option(help="Skip this many frames at the start.")]
FrameStride = Annotated[int | None, typer.Option(
    help="Take every Nth frame (default: the engine's; every frame, NR models 1 frame per second).")]
SampleFps = Annotated[float | None, typer.Option(help="Take this many frames per second of video.")]
SampleFrames = Annotated[int | None, typer.Option(help="Take this many frames, evenly spaced.")]
MaxFrames = Annotated[int | None, typer.Option(help="Take at most this many frames.")]
NRProtocol = Annotated[str, typer.Option(
    help="NR models: how frame (or clip) results make the video's score: mean-score (mean of the scores) or "
         "mean-logits (Q-Align's per-frame protocol: mean level logits, then softmax).")]

# How engines run
BatchSize = Annotated[int, typer.Option(help="Frames per inference call.")]
Device = Annotated[Literal["cpu", "cuda"], typer.Option(
    help="ONNX Runtime device (TensorRT plans run on the GPU, baselines on the CPU).")]


def check_threads(value: int) -> int:
    """The ``--threads`` callback: 0 (one per core) up to 4 per core, refused in one line before any work."""
    from vqa_rt.runtime.checks import thread_count

    return thread_count(value, "--threads")


Threads = Annotated[int, typer.Option(
    help="Inference threads per engine (0: one per core; at most 4 per core).", callback=check_threads)]


def parse_size(text: str | None, option: str = "--analysis-size") -> tuple[int, int] | None:
    """``WIDTHxHEIGHT`` as (width, height); None for None. A malformed size is an :class:`InputError` (one line)."""
    if text is None:
        return None
    parts = text.strip().lower().split("x")
    if len(parts) != 2 or not all(part.isascii() and part.isdigit() and len(part) <= 6 for part in parts):
        raise InputError(f"{option}: expected WIDTHxHEIGHT in pixels (such as 640x360), got {text!r}")
    width, height = (int(part) for part in parts)
    if width <= 0 or height <= 0:
        raise InputError(f"{option}: sizes must be positive, got {text!r}")
    return width, height


# How QP maps are made and written
MapFormat = Annotated[Literal[FORMATS], typer.Option(
    "--format", help="npy, csv, x265 (float32 quantOffsets), kvazaar (ROI text), kvazaar-bin, json (summary only).")]
BaseQP = Annotated[int, typer.Option(
    help=f"Encoder QP the deltas apply to (paper test points {'/'.join(map(str, PAPER_BASE_QPS))}).")]
Grid = Annotated[int | None, typer.Option(
    help=f"Map cell size in pixels, one of {', '.join(map(str, GRIDS))} (default: 64 for Kvazaar, else 16).")]
MaxDelta = Annotated[int, typer.Option(help="Clip delta QPs to +-this.")]
Codec = Annotated[Literal[tuple(QP_RANGES)], typer.Option(
    help="Legal QP range: " + ", ".join(f"{k} {lo}..{hi}" for k, (lo, hi) in QP_RANGES.items()) + ".")]
