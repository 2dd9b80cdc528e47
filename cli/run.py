"""``vqa-rt run``: one pass over a source and its reconstruction through FR, NR and QP-map engines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, Optional

import typer

from vqa_rt.cli.options import ColorRange, Height, PixFmt, Width
from vqa_rt.runtime.qpmaps.conversion import GRIDS, QP_RANGES, QPConversion
from vqa_rt.runtime.qpmaps.formats import FORMATS, default_grid


def run_command(
    source: Optional[str] = typer.Option(None, "--source", "-s",
                                         help="Source (reference) video: raw YUV, Y4M, a container, or - for stdin."),
    distorted: Optional[str] = typer.Option(None, "--distorted", "-d",
                                            help="Reconstruction: raw YUV, Y4M, a container, a FIFO, or - for stdin."),
    fr: Optional[str] = typer.Option(None, help="FR engine: .onnx/.plan FR model or a baseline (psnr, ssim, ...)."),
    nr: Optional[str] = typer.Option(None, help="NR engine: .onnx/.plan NR model (scores the distorted video)."),
    qpmap: Optional[str] = typer.Option(None, help="QP-map engine (.onnx from 'vqa-rt export qpmap'); maps the source."),
    qp_method: Literal["model", "activity"] = typer.Option(
        "model", help="activity: QP maps from block activity, no engine."),
    output_dir: Optional[Path] = typer.Option(
        None, "--output-dir", "-o", help="Write fr.json/csv, nr.json/csv, qpmap.*, run.json here (created)."),
    jsonl: Optional[str] = typer.Option(
        None, help="Per-frame results as JSON lines to this file or FIFO, or - for stdout, flushed per frame."),
    width: Width = None,
    height: Height = None,
    pix_fmt: PixFmt = None,
    fps: Optional[float] = typer.Option(None, help="Frame rate of raw YUV (for NR's frames per second)."),
    matrix: Literal["bt709", "bt601"] = typer.Option("bt709", help="YUV->RGB matrix."),
    color_range: ColorRange = None,
    frame_skip: int = typer.Option(0, help="Skip this many frames at the start (every engine)."),
    max_frames: Optional[int] = typer.Option(None, help="Read at most this many frames (after the skip)."),
    fr_stride: Optional[int] = typer.Option(None, help="FR: score every Nth frame (default every frame)."),
    nr_fps: Optional[float] = typer.Option(None, help="NR: frames per second of video (default 1)."),
    nr_stride: Optional[int] = typer.Option(None, help="NR: score every Nth frame instead."),
    qp_format: Literal[FORMATS] = typer.Option("npy", help="QP-map file format (as 'vqa-rt qpmap --format')."),
    base_qp: int = typer.Option(32, help="Encoder QP the deltas apply to."),
    grid: Optional[int] = typer.Option(
        None, help=f"QP-map cell size, one of {', '.join(map(str, GRIDS))} (default: 64 for Kvazaar, else 16)."),
    max_delta: int = typer.Option(4, help="Clip delta QPs to +-this."),
    codec: Literal[tuple(QP_RANGES)] = typer.Option("hevc", help="Legal QP range of the codec."),
    batch_size: int = typer.Option(1, help="Frames per inference call (FR and NR)."),
    device: Literal["cpu", "cuda"] = typer.Option("cpu", help="ONNX Runtime device."),
    threads: int = typer.Option(0, help="Inference threads per engine (0: one per core)."),
):
    """One job in one pass: FR(source, distorted), NR(distorted) and QP maps(source), each frame decoded once."""
    from vqa_rt.cli.app import UNTRAINED_WARNING
    from vqa_rt.runtime.pipeline.job import JobEngines, JobOptions, JsonLines, run_job
    from vqa_rt.runtime.pipeline.score import ScoreOptions
    from vqa_rt.runtime.frames.sources import VideoInput

    if batch_size < 1:
        raise typer.BadParameter("--batch-size must be at least 1")
    if output_dir is None and jsonl is None:
        raise typer.BadParameter("give --output-dir and/or --jsonl: results must go somewhere")
    engines = JobEngines(fr=fr, nr=nr, qpmap=qpmap, qp_method=qp_method)
    options = JobOptions(
        frames=ScoreOptions(matrix=matrix, color_range=color_range, frame_skip=frame_skip, max_frames=max_frames,
                            batch_size=batch_size),
        fr={"frame_stride": fr_stride} if fr_stride else {},
        nr={k: v for k, v in (("sample_fps", nr_fps), ("frame_stride", nr_stride)) if v is not None},
        conversion=QPConversion(base_qp=base_qp, max_delta=max_delta, codec=codec,
                                grid=default_grid(qp_format) if grid is None else grid),
        map_format=qp_format,
    )
    inputs = {role: VideoInput(path, width, height, pix_fmt, fps)
              for role, path in (("reference", source), ("distorted", distorted)) if path is not None}
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
