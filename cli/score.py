"""``vqa-rt score`` (a distorted video against its reference, or alone for an NR model) and ``vqa-rt make-clip``
(a synthetic test pair)."""

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
    Height,
    Matrix,
    MaxFrames,
    NRProtocol,
    PixFmt,
    SampleFps,
    SampleFrames,
    Threads,
    Width,
    parse_size,
)
from vqa_rt.cli.terminal import UNTRAINED_WARNING, frame_progress


def score(
    engine: str = typer.Option(
        ..., help="FR or NR engine (.onnx from 'vqa-rt export fr|nr', .plan from 'vqa-rt build-engine') or a "
                  "baseline metric: psnr, ssim, ms-ssim, vmaf."),
    reference: str | None = typer.Option(
        None, "--reference", "-r", help="Reference video: raw YUV, Y4M, a container, or - for stdin (not for NR "
                                        "engines)."),
    distorted: list[str] = typer.Option(
        ..., "--distorted", "-d", help="Distorted video: raw YUV, Y4M, a container, or - for stdin. Repeat it to "
                                       "score several renditions of the reference in one pass (with --output-dir)."),
    width: Width = None,
    height: Height = None,
    pix_fmt: PixFmt = None,
    fps: Fps = None,
    output: Path | None = typer.Option(None, "--output", "-o", help="JSON results (libvmaf-shaped)."),
    csv: Path | None = typer.Option(None, help="CSV of per-frame scores."),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", help="Ladder scoring: write NAME.json and NAME.csv here for each --distorted (NAME: "
                                   "its file name without the extension); the reference is read once."),
    matrix: Matrix = "bt709",
    color_range: ColorRange = None,
    analysis_size: AnalysisSize = None,
    frame_skip: FrameSkip = 0,
    frame_stride: FrameStride = None,
    sample_fps: SampleFps = None,
    sample_frames: SampleFrames = None,
    max_frames: MaxFrames = None,
    nr_protocol: NRProtocol = "mean-score",
    batch_size: BatchSize = 1,
    device: Device = "cpu",
    threads: Threads = 0,
):
    """Score a distorted video against its reference (FR model or baseline), or alone (NR model): per-frame and
    pooled scores. Several --distorted renditions of one reference are scored in one pass (--output-dir)."""
    from vqa_rt.errors import InputError
    from vqa_rt.runtime.frames.options import FrameOptions
    from vqa_rt.runtime.frames.sources import VideoInput
    from vqa_rt.runtime.pipeline.ladder import score_ladder
    from vqa_rt.runtime.pipeline.score import score as run_score

    options = FrameOptions(matrix=matrix, color_range=color_range, analysis_size=parse_size(analysis_size),
                           frame_skip=frame_skip, frame_stride=frame_stride, max_frames=max_frames,
                           batch_size=batch_size, sample_fps=sample_fps, sample_frames=sample_frames,
                           nr_protocol=nr_protocol)
    ref = None if reference is None else VideoInput(reference, width, height, pix_fmt, fps)
    videos = [VideoInput(path, width, height, pix_fmt, fps) for path in distorted]
    if len(videos) > 1 or output_dir is not None:
        if output_dir is None or output is not None or csv is not None:
            raise InputError("several --distorted renditions are written to --output-dir (one NAME.json and NAME.csv "
                             "each), not to --output/--csv")
        if ref is None:
            raise InputError("ladder scoring compares renditions with their reference: give --reference")
        with frame_progress("scored") as progress:
            results = score_ladder(engine, ref, videos, options, output_dir=str(output_dir), device=device,
                                   threads=threads, progress=progress)
        _report(results, labelled=True)
        return
    with frame_progress("scored") as progress:
        result = run_score(engine, ref, videos[0], options, output_json=str(output) if output else None,
                           output_csv=str(csv) if csv else None, device=device, threads=threads, progress=progress)
    _report([result], labelled=False)
    if output is None and csv is None:
        typer.echo("(no --output/--csv given: per-frame scores not saved)", err=True)


def _report(results: list[dict], labelled: bool) -> None:
    """The pooled scores of each result, one line each (prefixed with the distorted video's path when
    ``labelled``), and an NR model's video score; the untrained warning once."""
    model = results[0]["model"]
    if model["untrained"]:
        typer.echo(UNTRAINED_WARNING, err=True)
    untrained = " [untrained]" if model["untrained"] else ""
    scale = model["score_scale"]
    for result in results:
        values = result["pooled_metrics"][model["metric"]]
        pooled = {name: "n/a" if value is None else f"{value:.4f}" for name, value in values.items()}
        typer.echo(
            (f"{result['input']['distorted']}: " if labelled else "")
            + f"{len(result['frames'])} frames, {model['label']} ({scale['name']} {scale['min']:g}..{scale['max']:g}): "
            f"mean {pooled['mean']}, harmonic mean {pooled['harmonic_mean']}, "
            f"min {pooled['min']}, p5 {pooled['p5']}, max {pooled['max']}" + untrained
        )
        video = result.get("video")
        if video is not None:  # NR models
            typer.echo(f"video score ({video['protocol']}): {video['score']:.4f}{untrained}")


def make_clip(
    reference: Path = typer.Option(..., "--reference", "-r", help="Reference raw YUV file to write."),
    distorted: Path = typer.Option(..., "--distorted", "-d", help="Distorted raw YUV file to write."),
    width: int = typer.Option(320, "--width", "-w", help="Frame width (even, 2..8192)."),
    height: int = typer.Option(240, "--height", "-h", help="Frame height (even, 2..8192)."),
    frames: int = typer.Option(24, help="Number of frames (1..10000)."),
    ten_bit: bool = typer.Option(False, "--10bit", help="Write yuv420p10le instead of yuv420p."),
    quality: int = typer.Option(30, help="JPEG quality of the distortion (1..100; lower is worse)."),
    seed: int = typer.Option(0, help="Random seed of the scene (0..4294967295)."),
):
    """Make a synthetic test clip: a moving textured scene and a JPEG-degraded copy (raw YUV)."""
    from vqa_rt.runtime.frames.synthetic import make_test_clip
    from vqa_rt.runtime.outputs import check_output_paths

    check_output_paths([str(reference), str(distorted)])
    fmt = make_test_clip(
        str(reference), str(distorted), width, height, frames, seed=seed, bit_depth=10 if ten_bit else 8,
        quality=quality)
    typer.echo(f"wrote {reference} and {distorted}: {frames} frames {width}x{height} {fmt.pix_fmt}")
