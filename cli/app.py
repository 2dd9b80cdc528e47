"""The ``vqa-rt`` command line: the typer app and its entry point. Each command lives in a module of its
own (a thin layer over the library); this module only registers them, in the order ``--help`` lists them.

Heavy modules (torch, ONNX, ONNX Runtime, TensorRT) are imported inside the commands, so
``vqa-rt --help`` stays fast and needs neither torch nor TensorRT.
"""

from __future__ import annotations

import sys

import typer

from vqa_rt.cli import batch, evaluate, gpu, inspect, models, qpmap, quantize, run, score, serve
from vqa_rt.errors import VqaRtError

app = typer.Typer(
    name="vqa-rt",
    help="Compiled inference for video-quality networks (FR and NR scoring, QP maps, on ONNX Runtime).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.command()(models.init)
app.command()(models.export)
app.command()(score.score)
app.command("make-clip")(score.make_clip)
app.command("qpmap")(qpmap.qpmap_command)
app.command("score-batch")(batch.score_batch)
app.command("eval")(evaluate.evaluate)
app.command("quantize")(quantize.quantize_command)
app.command("build-engine")(gpu.build_engine_command)
app.command("doctor")(gpu.doctor_command)
app.command("run")(run.run_command)
app.command("serve")(serve.serve_command)
app.command("inspect")(inspect.inspect_command)


def main() -> None:
    """Entry point: library errors become one line on stderr and exit status 2."""
    try:
        app()
    except VqaRtError as exc:
        typer.echo(f"vqa-rt: error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        typer.echo(f"vqa-rt: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("vqa-rt: interrupted (results scored so far were kept in the output files)", err=True)
        sys.exit(130)
