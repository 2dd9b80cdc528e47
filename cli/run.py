"""``vqa-rt run``: one pass over a source and its reconstruction through FR, NR and QP-map engines."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

import typer

from vqa_rt.cli.options import (
    BaseQP,
    BatchSize,
    Codec,
    ColorRange,
    Device,
    Fps,
    FrameSkip,
    Grid,
    Height,
    Matrix,
    MaxDelta,
    PixFmt,
    Threads,
    Width,
)
from vqa_rt.cli.terminal import UNTRAINED_WARNING
from vqa_rt.runtime.qpmaps.formats import FORMATS


def run_command(
    source: str | None = typer.Option(None, "--source", "-s",
                                         help="Source (reference) video: raw YUV, Y4M, a container, or - for stdin."),
    distorted: str | None = typer.Option(None, "--distorted", "-d",
                                            help="Reconstruction: raw YUV, Y4M, a container, a FIFO, or - for stdin."),
    fr: str | None = typer.Option(None, help="FR engine: .onnx/.plan FR model or a baseline (psnr, ssim, ...)."),
    nr: str | None = typer.Option(None, help="NR engine: .onnx/.plan NR model (scores the distorted video)."),
    qpmap: str | None = typer.Option(None, help="QP-map engine (.onnx from 'vqa-rt export qpmap'); maps the source."),
    qp_method: Literal["model", "activity"] = typer.Option(
        "model", help="activity: QP maps from block activity, no engine."),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", "-o", help="Write fr.json/csv, nr.json/csv, qpmap.*, run.json here (created)."),
    jsonl: str | None = typer.Option(
        None, help="Per-frame results as JSON lines to this file or FIFO, or - for stdout, flushed per frame."),
    width: Width = None,
    height: Height = None,
    pix_fmt: PixFmt = None,
    fps: Fps = None,
    matrix: Matrix = "bt709",
    color_range: ColorRange = None,
    frame_skip: FrameSkip = 0,
    max_frames: int | None = typer.Option(None, help="Read at most this many frames (after the skip)."),
    fr_stride: int | None = typer.Option(None, help="FR: score every Nth frame (default every frame)."),
    nr_fps: float | None = typer.Option(None, help="NR: frames per second of video (default 1)."),
    nr_stride: int | None = typer.Option(None, help="NR: score every Nth frame instead."),
    qp_format: Literal[FORMATS] = typer.Option("npy", help="QP-map file format (as 'vqa-rt qpmap --format')."),
    base_qp: BaseQP = 32,
    grid: Grid = None,
    max_delta: MaxDelta = 4,
    codec: Codec = "hevc",
    batch_size: BatchSize = 1,
    device: Device = "cpu",
    threads: Threads = 0,
):
    """One job in one pass: FR(source, distorted), NR(distorted) and QP maps(source), each frame decoded once."""
    from vqa_rt.runtime.frames.options import EngineSampling, FrameOptions
    from vqa_rt.runtime.frames.sources import VideoInput, check_stdin
    from vqa_rt.runtime.outputs import check_output_paths
    from vqa_rt.runtime.pipeline.job import JobEngines, JobOptions, JsonLines, output_names, run_job
    from vqa_rt.runtime.qpmaps.formats import conversion_for

    if output_dir is None and jsonl is None:
        raise typer.BadParameter("give --output-dir and/or --jsonl: results must go somewhere")
    engines = JobEngines(fr=fr, nr=nr, qpmap=qpmap, qp_method=qp_method)
    options = JobOptions(
        frames=FrameOptions(matrix=matrix, color_range=color_range, frame_skip=frame_skip, max_frames=max_frames,
                            batch_size=batch_size),
        fr=EngineSampling(frame_stride=fr_stride),
        nr=EngineSampling(frame_stride=nr_stride, sample_fps=nr_fps),
        conversion=conversion_for(qp_format, grid, base_qp=base_qp, max_delta=max_delta, codec=codec),
        map_format=qp_format,
    )
    inputs = {role: VideoInput(path, width, height, pix_fmt, fps)
              for role, path in (("reference", source), ("distorted", distorted)) if path is not None}
    check_stdin(inputs)  # before --jsonl is opened
    if jsonl not in (None, "-"):  # opening it truncates it: the whole gate runs first
        written = ([os.path.join(output_dir, name) for name in output_names(engines, options)]
                   if output_dir is not None and os.path.isdir(output_dir) else [])
        check_output_paths([jsonl, *written], [source, distorted, fr, nr, qpmap])
    stream = None
    try:
        if jsonl == "-":
            stream = sys.stdout
        elif jsonl is not None:
            stream = open(jsonl, "w", encoding="utf-8")  # a FIFO blocks here until a reader opens it
        summary = run_job(engines, inputs, options, output_dir=None if output_dir is None else str(output_dir),
                          on_frame=None if stream is None else JsonLines(stream), device=device, threads=threads)
    finally:
        if stream is not None and stream is not sys.stdout:
            stream.close()
    if any((entry.get("model") or {}).get("untrained") for entry in summary["engines"].values()):
        typer.echo(UNTRAINED_WARNING, err=True)
    for name, entry in summary["engines"].items():
        typer.echo(f"{name}: {_pooled_line(name, entry)}", err=jsonl == "-")
    if output_dir is not None:
        typer.echo(f"wrote {output_dir}/ ({', '.join(summary['engines'])}, run.json) in {summary['seconds']:.1f} s",
                   err=jsonl == "-")


def _pooled_line(name: str, entry: dict) -> str:
    pooled = entry["pooled"] or {}
    if name == "qpmap":
        return (f"{entry['frames']} maps, delta QP mean {pooled.get('mean_delta_qp', float('nan')):+.2f} "
                f"({entry['model']['method']})")
    metric = entry["model"]["metric"]
    mean = (pooled.get(metric) or {}).get("mean")
    return f"{entry['frames']} frames, {metric} mean " + ("n/a" if mean is None else f"{mean:.4f}")
