"""``vqa-rt qpmap``: per-frame delta-QP maps for an encoder, from a model or block activity.

Only light modules are imported at start-up (the format and conversion constants);
ONNX Runtime and OpenCV load when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from vqa_rt.cli.options import (
    BaseQP,
    Codec,
    ColorRange,
    Device,
    Grid,
    Height,
    MapFormat,
    Matrix,
    MaxDelta,
    MaxFrames,
    PixFmt,
    Threads,
    Width,
)
from vqa_rt.cli.terminal import frame_progress
from vqa_rt.errors import Interrupted
from vqa_rt.runtime.qpmaps.conversion import R_LAMBDA_BETA

UNTRAINED_NOTE = "note: UNTRAINED weights (seeded random init): the QP maps are not perceptually meaningful"


def qpmap_command(
    input: str = typer.Option(..., "--input", "-i", help="Video: raw YUV, Y4M, a container, or - for stdin."),
    output: Path = typer.Option(..., "--output", "-o", help="Map file to write (the summary JSON for --format json)."),
    engine: Path | None = typer.Option(None, help="QP-map engine (.onnx from 'vqa-rt export qpmap')."),
    method: Literal["model", "activity"] = typer.Option(
        "model", help="model: the engine's learned QS map; activity: block high-pass activity, no engine."),
    fmt: MapFormat = "npy",
    base_qp: BaseQP = 32,
    grid: Grid = None,
    slope: float = typer.Option(1.0, help="Adaptation slope s (1.2: more aggressive)."),
    beta: float = typer.Option(R_LAMBDA_BETA, help="R-lambda exponent beta (negative)."),
    max_delta: MaxDelta = 4,
    codec: Codec = "hevc",
    summary: Path | None = typer.Option(None, help="Also write the JSON summary here."),
    width: Width = None,
    height: Height = None,
    pix_fmt: PixFmt = None,
    matrix: Matrix = "bt709",
    color_range: ColorRange = None,
    max_frames: MaxFrames = None,
    device: Device = "cpu",
    threads: Threads = 0,
):
    """Perceptual delta-QP maps, one per frame, in a format the encoder takes as it is."""
    from vqa_rt.runtime.frames.options import FrameOptions
    from vqa_rt.runtime.frames.sources import VideoInput
    from vqa_rt.runtime.pipeline.qpmap import write_qp_maps
    from vqa_rt.runtime.qpmaps.formats import conversion_for

    conversion = conversion_for(fmt, grid, base_qp=base_qp, beta=beta, slope=slope, max_delta=max_delta, codec=codec)
    try:
        with frame_progress("mapped") as progress:
            result = write_qp_maps(
                VideoInput(input, width, height, pix_fmt),
                str(output),
                fmt,
                str(engine) if engine else None,
                method=method,
                conversion=conversion,
                frame_options=FrameOptions(matrix=matrix, color_range=color_range, max_frames=max_frames),
                summary_path=str(summary) if summary else None,
                device=device,
                threads=threads,
                progress=progress,
            )
    except Interrupted as stopped:
        stopped.kept = "no QP-map file was written: maps are written only when the whole video is mapped"
        raise
    untrained = result["model"]["untrained"]
    if untrained:
        typer.echo(UNTRAINED_NOTE, err=True)
    pooled, grid_info = result["pooled"], result["map"]
    typer.echo(
        f"{len(result['frames'])} frames, {grid_info['cols']}x{grid_info['rows']} cells of "
        f"{grid_info['grid']}x{grid_info['grid']} ({method}), base QP {base_qp}: delta QP mean "
        f"{pooled['mean_delta_qp']:+.2f}, min {pooled['min_delta_qp']:+d}, max {pooled['max_delta_qp']:+d}; "
        f"wrote {output} ({fmt})" + (" [untrained]" if untrained else "")
    )
