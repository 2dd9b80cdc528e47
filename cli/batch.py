"""``vqa-rt score-batch``: score every row of a manifest with FR models and baselines, resumably."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Literal, Optional

import typer

_BAR_WIDTH = 30


def _progress_bar() -> Callable[[int, int, int], None]:
    """A one-line bar on stderr: rows done, failed, time spent and left."""
    start = time.monotonic()

    def show(done: int, total: int, failed: int) -> None:
        elapsed = time.monotonic() - start
        filled = _BAR_WIDTH * done // max(total, 1)
        left = elapsed / done * (total - done)
        print(f"\r[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {done}/{total} rows, {failed} failed, "
              f"{elapsed:.0f} s, about {left:.0f} s left ", end="", file=sys.stderr, flush=True)

    return show


def score_batch(
    manifest: Path = typer.Argument(
        ..., help="CSV with reference,distorted columns (+ width,height,pix_fmt for raw YUV; others are kept)."),
    engine: list[str] = typer.Option(
        ..., "--engine", "-e",
        help="FR or NR model (.onnx) or baseline (psnr, ssim, ms-ssim, vmaf); repeat for several."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Results CSV, one line per row; rows already in it are skipped (resume)."),
    pool: str = typer.Option("mean", help="How frame scores become the video's: mean, harmonic_mean, min, p5, max."),
    workers: int = typer.Option(0, help="Videos scored at once (0: one per core)."),
    threads: int = typer.Option(0, help="Threads per worker for ONNX Runtime and libvmaf (0: cores / workers)."),
    retry_failed: bool = typer.Option(False, help="Score rows recorded as failed again."),
    analysis_size: Optional[str] = typer.Option(None, help="Resize frames to WIDTHxHEIGHT before scoring."),
    frame_skip: int = typer.Option(0, help="Skip this many frames at the start."),
    frame_stride: Optional[int] = typer.Option(
        None, help="Score every Nth frame (default: every frame; NR models: 1 frame per second)."),
    max_frames: Optional[int] = typer.Option(None, help="Score at most this many frames per video."),
    matrix: Literal["bt709", "bt601"] = typer.Option("bt709", help="YUV->RGB matrix (FR models)."),
    color_range: Optional[Literal["limited", "full"]] = typer.Option(
        None, "--range", help="YUV range (FR models; default: Y4M tag, else limited)."),
    device: Literal["cpu", "cuda"] = typer.Option("cpu", help="ONNX Runtime device (FR models)."),
):
    """Score a manifest of videos with one or more engines into a CSV, in parallel; rerun to resume."""
    from vqa_rt.cli.app import UNTRAINED_WARNING, _parse_size
    from vqa_rt.runtime.pipeline.batch import run_batch
    from vqa_rt.runtime.pipeline.score import ScoreOptions

    options = ScoreOptions(matrix=matrix, color_range=color_range, analysis_size=_parse_size(analysis_size),
                           frame_skip=frame_skip, frame_stride=frame_stride, max_frames=max_frames)
    terminal = sys.stderr.isatty()
    try:
        summary = run_batch(str(manifest), engine, str(output), options, pool=pool, workers=workers,
                            threads=threads, device=device, retry_failed=retry_failed,
                            progress=_progress_bar() if terminal else None)
    finally:
        if terminal:
            print(file=sys.stderr)
    if summary.untrained:
        typer.echo(f"{UNTRAINED_WARNING} ({', '.join(summary.untrained)})", err=True)
    typer.echo(f"rows: {summary.scored} scored, {summary.failed} failed, {summary.skipped} already in {output}, "
               f"{summary.total} in the manifest ({summary.workers} workers)")
    if summary.failed:
        typer.echo(f"vqa-rt: failed rows: {summary.failed}; see the error column of {output} "
                   "(--retry-failed scores them again)", err=True)
        raise typer.Exit(1)
