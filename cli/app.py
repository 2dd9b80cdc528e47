"""The ``vqa-rt`` command line: the typer app and its entry point. Each command lives in a module of its
own (a thin layer over the library); this module only registers them, in the order ``--help`` lists them.

Heavy modules (torch, ONNX, ONNX Runtime, TensorRT) are imported inside the commands, so
``vqa-rt --help`` stays fast and needs neither torch nor TensorRT.
"""

from __future__ import annotations

import signal
import sys

import typer

from vqa_rt.cli import batch, evaluate, gpu, inspect, models, qpmap, quantize, run, score, serve, train
from vqa_rt.errors import Interrupted, VqaRtError

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
app.command("bd-rate")(evaluate.bd_rate)
app.command("quantize")(quantize.quantize_command)
app.command("build-engine")(gpu.build_engine_command)
app.command("doctor")(gpu.doctor_command)
app.command("run")(run.run_command)
app.command("serve")(serve.serve_command)
app.command("inspect")(inspect.inspect_command)
app.add_typer(train.app, name="train")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stopped: list[Interrupted] = []  # the signal that stopped the command (typer turns the interrupt into exit 130)


def _stop(signum: int, _frame) -> None:
    """SIGINT and SIGTERM alike: raise :class:`Interrupted` in the main thread, which every command handles as
    Ctrl-C (workers stop, results so far are written marked incomplete with the reason, temporary files go)."""
    _stopped.append(Interrupted(signal.Signals(signum).name, 128 + signum))
    raise _stopped[-1]


def main() -> None:
    """Entry point: library errors become one line on stderr and exit status 2; SIGINT and SIGTERM stop the
    command the same way, say so in one line and exit with 128 + the signal's number (130, 143)."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _stop)
    try:
        status = app(standalone_mode=False)
    except typer.Abort:  # end of input at a prompt
        sys.exit(1)
    except typer.TyperException as exc:  # an option or argument the command cannot take: one line too
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `vqa-rt` alone: the help
            typer.echo(ctx.get_help())
            sys.exit(2)
        command = f"{ctx.command_path.split()[-1]}: " if ctx is not None and ctx.parent is not None else ""
        message = " ".join(exc.format_message().replace("Value error, ", "").split())
        typer.echo(f"vqa-rt: error: {command}{message}", err=True)
        sys.exit(2)
    except VqaRtError as exc:
        typer.echo(f"vqa-rt: error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        typer.echo(f"vqa-rt: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(2)
    if _stopped and status == 130:  # typer turns the interrupt into exit status 130
        typer.echo(f"vqa-rt: {_stopped[0]} ({_stopped[0].kept})", err=True)
        sys.exit(_stopped[0].exit_status)
    sys.exit(status if isinstance(status, int) else 0)
