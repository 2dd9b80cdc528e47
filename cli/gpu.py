"""``vqa-rt build-engine`` (ONNX -> TensorRT plan) and ``vqa-rt doctor`` (what the GPU path finds here).

Only typer is imported at start-up; ONNX, TensorRT and the probes load when a command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from vqa_rt.cli.options import parse_size

Precision = Literal["fp32", "fp16", "int8", "fp8"]
Flavour = Literal["auto", "tensorrt", "rtx"]
Deform = Literal["auto", "plugin", "decomposed", "builtin"]


def build_engine_command(
    model: Path = typer.Argument(..., help="Exported ONNX model (from 'vqa-rt export' or 'vqa-rt quantize')."),
    output: Path = typer.Option(..., "--output", "-o", help="Plan to write (.plan); PLAN.json and "
                                "PLAN.report.json are written beside it."),
    target: str | None = typer.Option(
        None, help="GPUs to build for: compute capabilities such as sm80,sm86,sm89,sm120 (one plan may carry several; "
        "built ahead of time by TensorRT for RTX, no GPU needed), or native (the GPU at hand; the default where a "
        "GPU is visible)."),
    flavour: Flavour = typer.Option(
        "auto", help="tensorrt (full TensorRT: builds for the GPU at hand, Hopper included), rtx (TensorRT for RTX: "
        "sm75-sm121, ahead of time), or auto (rtx for named targets; for native, full TensorRT where installed)."),
    deform: Deform = typer.Option(
        "auto", help="DeformConv in the FR model: plugin (vqa-rt's VqaDeformConv2d, libvqa_trt_plugin.so), "
        "decomposed (standard ops: GridSample + MatMul; any pip install), builtin (full TensorRT's "
        "ModulatedDeformConv2d), or auto (plugin where it is built, else decomposed)."),
    precision: Precision = typer.Option(
        "fp32", help="fp32; fp16 (the graph is converted to FP16, inputs/outputs stay FP32); int8 or fp8 "
        "(the graph must hold explicit Q/DQ nodes of that type, e.g. from 'vqa-rt quantize')."),
    min_size: str = typer.Option("640x360", help="Smallest frame WIDTHxHEIGHT the plan accepts."),
    opt_size: str = typer.Option("1920x1080", help="Frame size TensorRT tunes for."),
    max_size: str = typer.Option("3840x2160", help="Largest frame size the plan accepts (memory grows with it)."),
    opt_batch: int = typer.Option(1, help="Batch size TensorRT tunes for."),
    max_batch: int = typer.Option(4, help="Largest batch the plan accepts (frames per inference call)."),
    timing_cache: Path | None = typer.Option(
        None, help="Timing cache file for full TensorRT: read if present, written after the build (reuse it across "
        "builds). TensorRT for RTX has none."),
    workspace: int | None = typer.Option(None, help="Workspace limit in MiB (default: TensorRT's)."),
    plugin: Path | None = typer.Option(
        None, help="libvqa_trt_plugin.so (default: $VQA_RT_PLUGIN, then build/kernels/lib)."),
    verbose: bool = typer.Option(False, "--verbose", help="Show TensorRT's info messages."),
):
    """Build a TensorRT plan from an ONNX model: ahead of time for named GPU targets (TensorRT for RTX, no GPU
    needed) or for the GPU at hand."""
    from vqa_rt.export.onnx_tools.trt_build import BuildOptions, build_engine
    from vqa_rt.export.onnx_tools.trt_profile import ShapeRange

    shapes = ShapeRange(parse_size(min_size, "--min-size"), parse_size(opt_size, "--opt-size"),
                        parse_size(max_size, "--max-size"), 1, opt_batch, max_batch)
    options = BuildOptions(precision=precision, shapes=shapes, flavour=flavour, targets=target, deform=deform,
                           workspace_mib=workspace, timing_cache=str(timing_cache) if timing_cache else None,
                           plugin=str(plugin) if plugin else None, verbose=verbose)
    report = build_engine(str(model), str(output), options)
    for line in report.summary():
        typer.echo(line)


def doctor_command(
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
):
    """Report what the GPU path finds here (GPU, CUDA, TensorRT, plugin, kernels, ONNX Runtime) and how each was
    probed; always exits 0."""
    from vqa_rt.runtime.tools.doctor import as_dicts, diagnose, format_findings

    findings = diagnose()
    if as_json:
        typer.echo(json.dumps(as_dicts(findings), indent=2))
    else:
        for line in format_findings(findings):
            typer.echo(line)
