"""``vqa-rt quantize``: an exported NR model to int8 / fp8 Q/DQ or ONNX Runtime weight-only, with a fidelity report."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer
from vqa_rt.cli.options import ColorRange, Height, PixFmt, Width

MODES = ("int8", "int8-weight-only", "int4-weight-only", "fp8")


def quantize_command(
    model: Path = typer.Argument(..., help="Exported model (.onnx from 'vqa-rt export nr')."),
    output: Path = typer.Option(..., "--output", "-o", help="Quantized ONNX file to write."),
    mode: Literal[MODES] = typer.Option(
        "int8", help="int8 / fp8: explicit Q/DQ (TensorRT; int8 also ONNX Runtime CPU); "
                     "int8-weight-only / int4-weight-only: ONNX Runtime MatMulNBits."),
    calibration: str = typer.Option(
        ..., help="Calibration video (raw YUV, Y4M, or - for stdin); also the evaluation frames unless --eval."),
    eval_video: Optional[str] = typer.Option(None, "--eval", help="Other video to evaluate fidelity on."),
    report: Optional[Path] = typer.Option(None, help="Also write the fidelity report here (JSON)."),
    width: Width = None,
    height: Height = None,
    pix_fmt: PixFmt = None,
    fps: Optional[float] = typer.Option(None, help="Frame rate of raw YUV (Y4M headers carry it); for --sample-fps."),
    matrix: Literal["bt709", "bt601"] = typer.Option("bt709", help="YUV->RGB matrix."),
    color_range: ColorRange = None,
    frame_skip: int = typer.Option(0, help="Skip this many frames at the start."),
    frame_stride: Optional[int] = typer.Option(None, help="Use every Nth frame (default: 1 frame per second)."),
    sample_fps: Optional[float] = typer.Option(None, help="Use this many frames per second of video."),
    sample_frames: Optional[int] = typer.Option(None, help="Use this many frames, evenly spaced."),
    max_frames: Optional[int] = typer.Option(None, help="Use at most this many frames."),
    batch_size: int = typer.Option(1, help="Frames per inference call in the fidelity run."),
    threads: int = typer.Option(0, help="ONNX Runtime threads (0: one per core)."),
):
    """Quantize an NR model, calibrated on video frames, and compare it with the original on ONNX Runtime CPU."""
    from vqa_rt.cli.app import UNTRAINED_WARNING
    from vqa_rt.export.onnx_tools.quantize import MODES as MODE_INFO, quantize_model
    from vqa_rt.runtime.engines.metadata import read_model_info
    from vqa_rt.runtime.pipeline.score import ScoreOptions
    from vqa_rt.runtime.frames.sources import VideoInput
    from vqa_rt.runtime.outputs import check_output_paths, render_json, write_atomic

    if batch_size < 1:
        raise typer.BadParameter("--batch-size must be at least 1")
    if report is not None:
        check_output_paths([str(report)])
    options = ScoreOptions(matrix=matrix, color_range=color_range, frame_skip=frame_skip, frame_stride=frame_stride,
                           max_frames=max_frames, batch_size=batch_size, sample_fps=sample_fps,
                           sample_frames=sample_frames)
    videos = [None if path is None else VideoInput(path, width, height, pix_fmt, fps) for path in (calibration, eval_video)]
    result = quantize_model(str(model), str(output), mode, videos[0], options, evaluation=videos[1], threads=threads)
    if report is not None:
        write_atomic(str(report), render_json({"model": str(model), "output": str(output), "mode": mode,
                                               "fidelity": result.as_dict()}))
    if read_model_info(str(output)).untrained:
        typer.echo(UNTRAINED_WARNING + "; the fidelity numbers compare two untrained models", err=True)
    typer.echo(f"wrote {output}: {MODE_INFO[mode].description}; for {MODE_INFO[mode].target}")
    typer.echo(result.summary())
    if not result.runs_on_cpu:
        typer.echo(f"note: ONNX Runtime's CPU provider cannot run {mode} graphs; the file is for "
                   f"{MODE_INFO[mode].target}", err=True)
