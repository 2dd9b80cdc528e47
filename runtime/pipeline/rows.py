"""One manifest row scored with every engine of a batch, into the values of its output line: the
manifest's columns, each engine's pooled score, then ``frames``, ``status``, ``error`` and ``seconds``.
A row's own bad input is recorded in its ``error``; only an interrupt stops the scoring.
"""

from __future__ import annotations

import threading
import time

from vqa_rt.errors import VqaRtError
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.pipeline.manifest import ManifestRow
from vqa_rt.runtime.pipeline.score import score

RESULT_COLUMNS = ("frames", "status", "error", "seconds")


class Cancelled(Exception):
    """Raised inside a row's scoring to stop it as soon as the batch is interrupted."""


def one_line(exc: BaseException) -> str:
    """An error as one line: a vqa-rt error's message, else the exception's type and message."""
    text = str(exc) if isinstance(exc, VqaRtError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _line(row: ManifestRow, scores: dict[str, str], frames: str, error: str, seconds: float) -> dict[str, str]:
    return {**row.values, **scores, "frames": frames, "status": "failed" if error else "ok", "error": error,
            "seconds": f"{seconds:.3f}"}


def failed_row(row: ManifestRow, engines: list[Engine], error: str) -> dict[str, str]:
    """The output line of a row that could not be scored at all (its worker lost, for instance)."""
    return _line(row, {engine.column: "" for engine in engines}, "", error, 0.0)


def score_row(row: ManifestRow, engines: list[Engine], options: FrameOptions, pool: str, device: str, threads: int,
              cancel: threading.Event) -> dict[str, str]:
    """Score one row with every engine; the first engine that fails ends it, its error recorded (the scores
    of the engines before it kept). Raises :class:`Cancelled` once ``cancel`` is set."""
    def stop_if_cancelled(done: int, total: int | None) -> None:
        if cancel.is_set():
            raise Cancelled

    stop_if_cancelled(0, None)
    start = time.perf_counter()
    scores = {engine.column: "" for engine in engines}
    frames = error = ""
    for engine in engines:
        try:
            result = score(engine, row.reference if engine.takes_reference else None, row.distorted, options,
                           device=device, threads=threads, progress=stop_if_cancelled)
        except Cancelled:
            raise
        except Exception as exc:  # recorded in the row; the batch goes on
            error = f"{engine.column}: {one_line(exc)}"
            break
        value = result["video"]["score"] if pool == "mean" and "video" in result else (
            result["pooled_metrics"][result["model"]["metric"]][pool])
        scores[engine.column] = "" if value is None else format(value, ".10g")
        frames = str(len(result["frames"]))
    return _line(row, scores, frames, error, time.perf_counter() - start)
