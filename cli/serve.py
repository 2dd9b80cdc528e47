"""``vqa-rt serve``: keep engines loaded and take jobs over a Unix domain socket."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Literal

import typer

from vqa_rt.cli.options import Device, Threads


def serve_command(
    socket_path: Path = typer.Option(..., "--socket", help="Unix domain socket to listen on (created, mode 0600)."),
    fr: str | None = typer.Option(None, help="FR engine: .onnx/.plan FR model or a baseline."),
    nr: str | None = typer.Option(None, help="NR engine: .onnx/.plan NR model."),
    qpmap: str | None = typer.Option(None, help="QP-map engine (.onnx from 'vqa-rt export qpmap')."),
    qp_method: Literal["model", "activity"] = typer.Option("model", help="activity: QP maps without an engine."),
    device: Device = "cpu",
    threads: Threads = 0,
    drain_timeout: float = typer.Option(30.0, help="Seconds running jobs get to finish at shutdown (0..86400)."),
):
    """Serve FR/NR/QP-map jobs from warm engines over a local socket (protocol: docs/serve-protocol.md)."""
    from vqa_rt.runtime.pipeline.job import JobEngines
    from vqa_rt.runtime.serve.server import serve

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    engines = JobEngines(fr=fr, nr=nr, qpmap=qpmap, qp_method=qp_method)
    offered = ", ".join(name for name, engine in (("fr", fr), ("nr", nr), ("qpmap", engines.maps)) if engine)

    def ready() -> None:
        typer.echo(f"vqa-rt serve: listening on {socket_path} (engines: {offered}); Ctrl-C or SIGTERM stops",
                   err=True)

    serve(str(socket_path), engines, device=device, threads=threads, stop=stop, drain_timeout=drain_timeout,
          ready=ready, log=lambda message: typer.echo(f"vqa-rt serve: {message}", err=True))
    typer.echo("vqa-rt serve: stopped", err=True)
