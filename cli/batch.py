"""``vqa-rt score-batch``: score every row of a manifest with FR and NR models and baselines, resumably."""

from __future__ import annotations

from pathlib import Path

import typer

from vqa_rt.cli.options import (
    AnalysisSize,
    BatchSize,
    ColorRange,
    Device,
    Fps,
    FrameSkip,
    FrameStride,
    Matrix,
    MaxFrames,
    NRProtocol,
    SampleFps,
    SampleFrames,
    check_threads,
    check_workers,
    parse_size,
)
from vqa_rt.cli.terminal import UNTRAINED_WARNING, rows_progress
from vqa_rt.errors import Interrupted


def score_batch(
    manifest: Path = typer.Argument(
        ..., help="CSV with reference,distorted columns (+ width,height,pix_fmt,fps for raw YUV; others are kept, "
                  "but none may be named like a column the results add: an engine's, frames, status, error, "
                  "seconds)."),
    engine: list[str] = typer.Option(
        ..., "--engine", "-e",
        help="FR or NR model (.onnx, .plan) or baseline (psnr, ssim, ms-ssim, vmaf); repeat for several."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Results CSV, one line per row; rows already in it are skipped (resume)."),
    pool: str = typer.Option("mean", help="How frame scores become the video's: mean, harmonic_mean, min, p5, max "
                                          "(NR models: mean is the --nr-protocol's video score)."),
    workers: int = typer.Option(0, help="Videos scored at once (0: one per core; at most 4 per core).",
                                callback=check_workers),
    threads: int = typer.Option(0, help="Threads per worker for ONNX Runtime and libvmaf (0: cores / workers; at "
                                "most 4 per core).", callback=check_threads),
    retry_failed: bool = typer.Option(
        False, help="Score rows recorded as failed again (without it a rerun keeps them, reports them and exits 1)."),
    fps: Fps = None,
    analysis_size: AnalysisSize = None,
    frame_skip: FrameSkip = 0,
    frame_stride: FrameStride = None,
    sample_fps: SampleFps = None,
    sample_frames: SampleFrames = None,
    max_frames: MaxFrames = None,
    nr_protocol: NRProtocol = "mean-score",
    matrix: Matrix = "bt709",
    color_range: ColorRange = None,
    batch_size: BatchSize = 1,
    device: Device = "cpu",
):
    """Score a manifest of videos with one or more engines into a CSV, in parallel; rerun to resume.

    A rerun (with the same manifest and engines, in any order) scores only the rows not yet in the output.
    Rows recorded as failed are not scored again unless --retry-failed; they are reported, and the command
    exits 1 while any row of the manifest is recorded as failed (0 when every row is scored). A row's fps
    column, else --fps, gives the frame rate of raw YUV (NR models take 1 frame per second by default).
    """
    from vqa_rt.runtime.frames.options import FrameOptions
    from vqa_rt.runtime.pipeline.batch import run_batch

    options = FrameOptions(matrix=matrix, color_range=color_range, analysis_size=parse_size(analysis_size),
                           frame_skip=frame_skip, frame_stride=frame_stride, max_frames=max_frames,
                           batch_size=batch_size, sample_fps=sample_fps, sample_frames=sample_frames,
                           nr_protocol=nr_protocol)
    try:
        with rows_progress() as progress:
            summary = run_batch(str(manifest), engine, str(output), options, pool=pool, workers=workers,
                                threads=threads, device=device, retry_failed=retry_failed, progress=progress, fps=fps)
    except Interrupted as stopped:
        stopped.kept = f"the rows already scored are in {output}; run the same command again to resume"
        raise
    if summary.untrained:
        typer.echo(f"{UNTRAINED_WARNING} ({', '.join(summary.untrained)})", err=True)
    earlier = f" ({summary.failed_before} of them failed, not retried)" if summary.failed_before else ""
    typer.echo(f"rows: {summary.scored} scored, {summary.failed} failed, {summary.skipped} already in {output}"
               f"{earlier}, {summary.total} in the manifest ({summary.workers} workers)")
    failed = summary.failed + summary.failed_before
    if failed:
        typer.echo(f"vqa-rt: failed rows: {failed} ({summary.failed} now, {summary.failed_before} earlier); see the "
                   f"error column of {output} (--retry-failed scores them again)", err=True)
        raise typer.Exit(1)
