"""``vqa-rt score-batch``: score every row of a manifest with FR and NR models and baselines, resumably."""

from __future__ import annotations

from pathlib import Path

import typer

from vqa_rt.cli.options import AnalysisSize, ColorRange, Device, FrameSkip, FrameStride, Matrix, MaxFrames, parse_size
from vqa_rt.cli.terminal import UNTRAINED_WARNING, rows_progress


def score_batch(
    manifest: Path = typer.Argument(
        ..., help="CSV with reference,distorted columns (+ width,height,pix_fmt for raw YUV; others are kept)."),
    engine: list[str] = typer.Option(
        ..., "--engine", "-e",
        help="FR or NR model (.onnx, .plan) or baseline (psnr, ssim, ms-ssim, vmaf); repeat for several."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Results CSV, one line per row; rows already in it are skipped (resume)."),
    pool: str = typer.Option("mean", help="How frame scores become the video's: mean, harmonic_mean, min, p5, max."),
    workers: int = typer.Option(0, help="Videos scored at once (0: one per core)."),
    threads: int = typer.Option(0, help="Threads per worker for ONNX Runtime and libvmaf (0: cores / workers)."),
    retry_failed: bool = typer.Option(False, help="Score rows recorded as failed again."),
    analysis_size: AnalysisSize = None,
    frame_skip: FrameSkip = 0,
    frame_stride: FrameStride = None,
    max_frames: MaxFrames = None,
    matrix: Matrix = "bt709",
    color_range: ColorRange = None,
    device: Device = "cpu",
):
    """Score a manifest of videos with one or more engines into a CSV, in parallel; rerun to resume."""
    from vqa_rt.runtime.frames.options import FrameOptions
    from vqa_rt.runtime.pipeline.batch import run_batch

    options = FrameOptions(matrix=matrix, color_range=color_range, analysis_size=parse_size(analysis_size),
                           frame_skip=frame_skip, frame_stride=frame_stride, max_frames=max_frames)
    with rows_progress() as progress:
        summary = run_batch(str(manifest), engine, str(output), options, pool=pool, workers=workers,
                            threads=threads, device=device, retry_failed=retry_failed, progress=progress)
    if summary.untrained:
        typer.echo(f"{UNTRAINED_WARNING} ({', '.join(summary.untrained)})", err=True)
    typer.echo(f"rows: {summary.scored} scored, {summary.failed} failed, {summary.skipped} already in {output}, "
               f"{summary.total} in the manifest ({summary.workers} workers)")
    if summary.failed:
        typer.echo(f"vqa-rt: failed rows: {summary.failed}; see the error column of {output} "
                   "(--retry-failed scores them again)", err=True)
        raise typer.Exit(1)
