"""``vqa-rt inspect``: what a program needs to drive an exported model or a TensorRT plan."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def inspect_command(
    engine: Path = typer.Argument(..., help="Exported model (.onnx) or TensorRT plan (.plan, with its PLAN.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
):
    """Describe an engine for programs that drive it themselves: tensors, pre-processing, plugins, versions."""
    from vqa_rt.runtime.tools.inspect import describe_engine, format_description

    described = describe_engine(str(engine))
    typer.echo(json.dumps(described, indent=2) if as_json else "\n".join(format_description(described)))
