"""``vqa-rt qpmap``: per-frame delta-QP maps for an encoder, from a model or block activity.

Only light modules are imported at start-up (the format and conversion constants);
ONNX Runtime and OpenCV load when the command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, Optional

import typer

from vqa_rt.cli.options import ColorRange, Height, PixFmt, Width
from vqa_rt.runtime.qpmaps.conversion import GRIDS, PAPER_BASE_QPS, QP_RANGES, R_LAMBDA_BETA, QPConversion
from vqa_rt.runtime.qpmaps.formats import FORMATS, default_grid

UNTRAINED_NOTE = "note: UNTRAINED weights (seeded random init): the QP maps are not perceptually meaningful"


def _terminal_progress(done: int, total: Optional[int]) -> None:
    suffix = f"/{total}" if total else ""
    print(f"\rmapped {done}{suffix} frames", end="", file=sys.stderr, flush=True)


def qpmap_command(
    input: str = typer.Option(..., "--input", "-i", help="Video: raw YUV, Y4M, or - for stdin."),
    output: Path = typer.Option(..., "--output", "-o", help="Map file to write (the summary JSON for --format json)."),
    engine: Optional[Path] = typer.Option(None, help="QP-map engine (.onnx from 'vqa-rt export qpmap')."),
    method: Literal["model", "activity"] = typer.Option(
        "model", help="model: the engine's learned QS map; activity: block high-pass activity, no engine."),
    fmt: Literal[FORMATS] = typer.Option(
        "npy", "--format", help="npy, csv, x265 (float32 quantOffsets), kvazaar (ROI text), kvazaar-bin, json."),
    base_qp: int = typer.Option(
        32, help=f"Encoder QP the deltas apply to (paper test points {'/'.join(map(str, PAPER_BASE_QPS))})."),
    grid: Optional[int] = typer.Option(
        None, help=f"Cell size in pixels, one of {', '.join(map(str, GRIDS))} (default: 64 for Kvazaar, else 16)."),
    slope: float = typer.Option(1.0, help="Adaptation slope s (1.2: more aggressive)."),
    beta: float = typer.Option(R_LAMBDA_BETA, help="R-lambda exponent beta (negative)."),
    max_delta: int = typer.Option(4, help="Clip deltas to +-this."),
    codec: Literal[tuple(QP_RANGES)] = typer.Option(
        "hevc", help="Legal QP range: " + ", ".join(f"{k} {lo}..{hi}" for k, (lo, hi) in QP_RANGES.items()) + "."),
    summary: Optional[Path] = typer.Option(None, help="Also write the JSON summary here."),
    width: Width = None,
    height: Height = None,
    pix_fmt: PixFmt = None,
    matrix: Literal["bt709", "bt601"] = typer.Option("bt709", help="YUV->RGB matrix (model method)."),
    color_range: ColorRange = None,
    max_frames: Optional[int] = typer.Option(None, help="Map at most this many frames."),
    device: Literal["cpu", "cuda"] = typer.Option("cpu", help="ONNX Runtime device."),
    threads: int = typer.Option(0, help="Inference threads (0: one per core)."),
):
    """Perceptual delta-QP maps, one per frame, in a format the encoder takes as it is."""
    from vqa_rt.runtime.pipeline.qpmap import FrameOptions, write_qp_maps
    from vqa_rt.runtime.frames.sources import VideoInput

    conversion = QPConversion(base_qp=base_qp, beta=beta, slope=slope, max_delta=max_delta,
                              grid=default_grid(fmt) if grid is None else grid, codec=codec)
    tty = sys.stderr.isatty()
    try:
        try:
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
                progress=_terminal_progress if tty else None,
            )
        finally:
            if tty:
                print(file=sys.stderr)
    except KeyboardInterrupt:
        typer.echo("vqa-rt: interrupted (no QP-map file was written)", err=True)
        raise typer.Exit(130) from None
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
