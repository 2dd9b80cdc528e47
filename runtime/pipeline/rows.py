"""Manifest rows scored with every engine of a batch, into the values of their output lines: the
manifest's columns, each engine's pooled score, then ``frames``, ``status``, ``error`` and ``seconds``.
A row's own bad input is recorded in its ``error``; only an interrupt stops the scoring.

Rows that share a reference are scored together (:func:`ladder_groups`, :func:`score_rows`): the
reference is read once and, for an FR ONNX model, its share of the work done once
(:mod:`.ladder`). Their lines are what scoring each row alone gives; they share the group's time
equally in ``seconds``.
"""

from __future__ import annotations

import threading
import time

from vqa_rt.errors import VqaRtError
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.pipeline.ladder import score_ladder
from vqa_rt.runtime.pipeline.manifest import ManifestRow
from vqa_rt.runtime.pipeline.score import score

RESULT_COLUMNS = ("frames", "status", "error", "seconds")
LADDER_ROWS = 4  # rows scored together at most: each holds a frame of its video in memory at once


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


def _canceller(cancel: threading.Event):
    """A progress callback that raises :class:`Cancelled` once ``cancel`` is set."""
    def stop_if_cancelled(done: int, total: int | None) -> None:
        if cancel.is_set():
            raise Cancelled

    return stop_if_cancelled


def _pooled(result: dict, pool: str) -> str:
    """A result's video score as its column holds it: an NR model's protocol score, else its pooled metric."""
    value = result["video"]["score"] if pool == "mean" and "video" in result else (
        result["pooled_metrics"][result["model"]["metric"]][pool])
    return "" if value is None else format(value, ".10g")


def score_row(row: ManifestRow, engines: list[Engine], options: FrameOptions, pool: str, device: str, threads: int,
              cancel: threading.Event) -> dict[str, str]:
    """Score one row with every engine; the first engine that fails ends it, its error recorded (the scores
    of the engines before it kept). Raises :class:`Cancelled` once ``cancel`` is set."""
    stop_if_cancelled = _canceller(cancel)
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
        scores[engine.column] = _pooled(result, pool)
        frames = str(len(result["frames"]))
    return _line(row, scores, frames, error, time.perf_counter() - start)


def ladder_groups(rows: list[ManifestRow], workers: int) -> list[list[ManifestRow]]:
    """The rows in groups that share a reference (the same file, read the same way), in manifest order: at most
    :data:`LADDER_ROWS` rows each, and small enough for two groups per worker where the rows allow, so that
    workers finishing early find work."""
    by_reference: dict = {}
    for row in rows:
        by_reference.setdefault(row.reference, []).append(row)
    size = max(1, min(LADDER_ROWS, -(-len(rows) // (2 * max(1, workers)))))
    return [group[i:i + size] for group in by_reference.values() for i in range(0, len(group), size)]


def score_rows(rows: list[ManifestRow], engines: list[Engine], options: FrameOptions, pool: str, device: str,
               threads: int, cancel: threading.Event) -> list[dict[str, str]]:
    """Score rows that share a reference together (see the module's text); if that fails, each row alone, so
    a row's error is its own. Raises :class:`Cancelled` once ``cancel`` is set."""
    if len(rows) == 1:
        return [score_row(rows[0], engines, options, pool, device, threads, cancel)]
    stop_if_cancelled = _canceller(cancel)
    stop_if_cancelled(0, None)
    start = time.perf_counter()
    scores: list[dict[str, str]] = [{} for _ in rows]
    frames: list[str] = [""] * len(rows)
    try:
        for engine in engines:
            if engine.takes_reference:
                results = score_ladder(engine, rows[0].reference, [row.distorted for row in rows], options,
                                       device=device, threads=threads, progress=stop_if_cancelled)
            else:
                results = [score(engine, None, row.distorted, options, device=device, threads=threads,
                                 progress=stop_if_cancelled) for row in rows]
            for position, result in enumerate(results):
                scores[position][engine.column] = _pooled(result, pool)
                frames[position] = str(len(result["frames"]))
    except Cancelled:
        raise
    except Exception:  # some row's own bad input: scored alone, each row records its own error
        return [score_row(row, engines, options, pool, device, threads, cancel) for row in rows]
    seconds = (time.perf_counter() - start) / len(rows)
    return [_line(row, values, count, "", seconds) for row, values, count in zip(rows, scores, frames)]
