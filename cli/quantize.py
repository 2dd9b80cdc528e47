"""``vqa-rt quantize``: an exported NR model to int8 / fp8 Q/DQ or ONNX Runtime weight-only, an FR model to int8 /
fp8 Q/DQ, with a fidelity report."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from vqa_rt.cli.options import (
    BatchSize,
    ColorRange,
    Fps,
    FrameSkip,
    FrameStride,
    Height,
    Matrix,
    MaxFrames,
    PixFmt,
    SampleFps,
    SampleFrames,
    Threads,
    Width,
)
from vqa_rt.cli.terminal import UNTRAINED_WARNING
from vqa_rt.errors import InputError, Interrupted
from vqa_rt.export.onnx_tools.quantize_modes import MAX_CALIBRATION_FRAMES, MIN_CALIBRATION_FRAMES, MODES


def quantize_command(
    model: Path = typer.Argument(..., help="Exported model (.onnx from 'vqa-rt export nr' or 'vqa-rt export fr')."),
    output: Path = typer.Option(..., "--output", "-o", help="Quantized ONNX file to write."),
    mode: Literal[tuple(MODES)] = typer.Option(
        "int8", help="int8 / fp8: explicit Q/DQ (TensorRT; int8 also ONNX Runtime CPU); NR only: "
                     "int8-weight-only / int4-weight-only: ONNX Runtime MatMulNBits."),
    calibration: str = typer.Option(
        ..., help="NR: calibration video (raw YUV, Y4M, a container, or - for stdin). FR: manifest CSV of reference "
                  "and distorted videos, as for score-batch. Also the evaluation frames unless --eval."),
    eval_video: str | None = typer.Option(None, "--eval", help="Other video (NR) or manifest (FR) to evaluate "
                                                               "fidelity on."),
    calibration_frames: int = typer.Option(
        MAX_CALIBRATION_FRAMES, min=MIN_CALIBRATION_FRAMES,
        help="Calibrate on at most this many of the selected frames (FR: frame pairs), spread evenly; each is held "
             "in memory with the activations it produces."),
    report: Path | None = typer.Option(None, help="Also write the fidelity report here (JSON)."),
    width: Width = None,
    height: Height = None,
    pix_fmt: PixFmt = None,
    fps: Fps = None,
    matrix: Matrix = "bt709",
    color_range: ColorRange = None,
    frame_skip: FrameSkip = 0,
    frame_stride: FrameStride = None,
    sample_fps: SampleFps = None,
    sample_frames: SampleFrames = None,
    max_frames: MaxFrames = None,
    batch_size: BatchSize = 1,
    threads: Threads = 0,
):
    """Quantize an NR model (calibrated on a video's frames) or an FR model (on a manifest's frame pairs) and
    compare it with the original on ONNX Runtime CPU."""
    from vqa_rt.export.onnx_tools.quantize import QUANTIZABLE_KINDS, quantize_model
    from vqa_rt.runtime.engines.record import resolve_engine
    from vqa_rt.runtime.frames.options import FrameOptions
    from vqa_rt.runtime.frames.sources import VideoInput
    from vqa_rt.runtime.outputs import check_output_paths, render_json, write_atomic
    from vqa_rt.runtime.pipeline.manifest import read_manifest

    check_output_paths([str(output), *([str(report)] if report else [])],
                       [str(model), *(str(path) for path in (calibration, eval_video) if path)])
    options = FrameOptions(matrix=matrix, color_range=color_range, frame_skip=frame_skip, frame_stride=frame_stride,
                           max_frames=max_frames, batch_size=batch_size, sample_fps=sample_fps,
                           sample_frames=sample_frames)
    fr = resolve_engine(str(model), QUANTIZABLE_KINDS).kind == "fr"
    if fr and (width or height or pix_fmt):
        raise InputError("--width/--height/--pix-fmt describe an NR model's video; an FR model's manifest gives them "
                         "per row (width, height, pix_fmt columns)")
    sets = [None if path is None else read_manifest(path, fps) if fr else VideoInput(path, width, height, pix_fmt, fps)
            for path in (calibration, eval_video)]
    try:
        result = quantize_model(str(model), str(output), mode, sets[0], options, evaluation=sets[1], threads=threads,
                                calibration_frames=calibration_frames)
    except Interrupted as stopped:
        stopped.kept = f"{output} was not written"
        raise
    if report is not None:
        write_atomic(str(report), render_json({"model": str(model), "output": str(output), "mode": mode,
                                               "fidelity": result.as_dict()}))
    if resolve_engine(str(output)).untrained:
        typer.echo(UNTRAINED_WARNING + "; the fidelity numbers compare two untrained models", err=True)
    typer.echo(f"wrote {output}: {MODES[mode].description}; for {MODES[mode].target}")
    typer.echo(result.summary())
    if not result.runs_on_cpu:
        typer.echo(f"note: ONNX Runtime's CPU provider cannot run {mode} graphs; the file is for "
                   f"{MODES[mode].target}", err=True)
