"""``vqa-rt score-batch``: score every row of a manifest with FR and NR models and baselines, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
    parse_size,
)
from vqa_rt.cli.terminal import UNTRAINED_WARNING, rows_progress
from vqa_rt.errors import InputError, Interrupted

if TYPE_CHECKING:
    from vqa_rt.runtime.pipeline.ray_batch import RaySettings


def _ray_settings(address: str | None, workers: int, cpus: float | None, gpus: float | None,
                  retries: int | None) -> RaySettings | None:
    """The --ray options as settings (None without --ray, where the other Ray options are refused)."""
    from vqa_rt.runtime.pipeline.ray_batch import RaySettings
    from vqa_rt.runtime.pipeline.ray_cluster import WorkerShape

    if address is None:
        given = [name for name, value in (("--cpus-per-worker", cpus), ("--gpus-per-worker", gpus),
                                          ("--max-retries", retries)) if value is not None]
        if given:
            raise InputError(f"{', '.join(given)}: only with --ray")
        return None
    shape = WorkerShape(1.0 if cpus is None else cpus, gpus or 0.0)
    return RaySettings(address, workers, shape, 2 if retries is None else retries)


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
    workers: int = typer.Option(0, help="Videos scored at once (0: one per core, at most 4 per core; with --ray: "
                                "Ray workers, 0: as many as the cluster holds)."),
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
    ray: str = typer.Option(
        None, "--ray", metavar="auto|HOST:PORT",
        help="Score on a Ray cluster: 'auto' (the one this machine belongs to) or the head's HOST:PORT. Needs "
             "Ray (the 'ray' extra) and the same files at the same paths on every node."),
    cpus_per_worker: float = typer.Option(None, help="With --ray: CPUs each Ray worker reserves, and its threads "
                                                     "unless --threads (default 1)."),
    gpus_per_worker: float = typer.Option(None, help="With --ray: GPUs each Ray worker reserves (default 0; 0.5: "
                                                     "two share one)."),
    max_retries: int = typer.Option(None, help="With --ray: times a row goes to another worker when its worker is "
                                               "lost, then it is recorded as failed (default 2)."),
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
    on_ray = _ray_settings(ray, workers, cpus_per_worker, gpus_per_worker, max_retries)
    try:
        with rows_progress() as progress:
            summary = run_batch(str(manifest), engine, str(output), options, pool=pool, workers=workers,
                                threads=threads, device=device, retry_failed=retry_failed, progress=progress, fps=fps,
                                ray=on_ray, notice=lambda message: typer.echo(f"vqa-rt: {message}", err=True))
    except Interrupted as stopped:
        stopped.kept = f"the rows already scored are in {output}; run the same command again to resume"
        raise
    if summary.untrained:
        typer.echo(f"{UNTRAINED_WARNING} ({', '.join(summary.untrained)})", err=True)
    earlier = f" ({summary.failed_before} of them failed, not retried)" if summary.failed_before else ""
    where = f"{summary.workers} Ray workers" if ray else f"{summary.workers} workers"
    if summary.lost_workers:
        where += f", {summary.lost_workers} lost and replaced, {summary.retried} rows sent again"
    typer.echo(f"rows: {summary.scored} scored, {summary.failed} failed, {summary.skipped} already in {output}"
               f"{earlier}, {summary.total} in the manifest ({where})")
    failed = summary.failed + summary.failed_before
    if failed:
        typer.echo(f"vqa-rt: failed rows: {failed} ({summary.failed} now, {summary.failed_before} earlier); see the "
                   f"error column of {output} (--retry-failed scores them again)", err=True)
        raise typer.Exit(1)
