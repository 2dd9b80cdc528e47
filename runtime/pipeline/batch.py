"""Scoring every row of a manifest with one or more engines, in parallel and resumably.

The output CSV has one line per manifest row: the manifest's columns, one column per
engine (its pooled score), then ``frames``, ``status`` (``ok``/``failed``), ``error``
and ``seconds``, in the order rows finish. Each finished row is appended with one
write and fsynced, so a killed run loses only the rows in flight and a rerun skips
the rows already there, with the engines named in any order. A row that fails is
recorded with its error; the batch goes on. A rerun does not score failed rows again
unless ``retry_failed`` (which drops them first), but counts them
(:attr:`BatchSummary.failed_before`), so a batch with failed rows never looks complete.

Local workers are threads: the work runs in native code that releases the GIL (NumPy,
OpenCV, ONNX Runtime, ffmpeg), and a killed batch leaves no worker processes behind. With
:class:`~.ray_batch.RaySettings`, the workers are Ray actors on a cluster (:mod:`.ray_batch`);
the output is still written here, by the driver alone, the same way.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from vqa_rt.errors import InputError
from vqa_rt.runtime.checks import thread_count
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.outputs import check_output_paths, write_atomic
from vqa_rt.runtime.pipeline.manifest import KEY, Manifest, ManifestRow, read_manifest
from vqa_rt.runtime.pipeline.pooling import pool as pool_values
from vqa_rt.runtime.pipeline.ray_batch import Notice, RaySettings, ray_batch
from vqa_rt.runtime.pipeline.rows import RESULT_COLUMNS, ladder_groups, score_rows
from vqa_rt.runtime.scorers.factory import scoring_engine
from vqa_rt.runtime.tables import read_table

POOLS = tuple(pool_values([1.0]))  # min, max, mean, harmonic_mean, p5

BatchProgress = Callable[[int, int, int], None]  # (rows done, rows to do, rows failed)


@dataclass(frozen=True)
class BatchSummary:
    """What one run did: rows in the manifest, already in the output before (``skipped``; of them
    ``failed_before`` recorded as failed and not retried), scored and failed now."""

    output: str
    total: int
    skipped: int
    scored: int
    failed: int
    workers: int
    untrained: list[str]  # engine columns whose model has untrained weights
    failed_before: int = 0
    lost_workers: int = 0  # Ray workers lost with their process or node (and replaced)
    retried: int = 0  # rows sent to another worker after theirs was lost


def _csv_line(values: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


class ResultLog:
    """The output CSV, resumed if it exists, to which whole rows are appended."""

    def __init__(self, path: str, columns: list[str], retry_failed: bool = False):
        self.path, self.columns = path, columns
        self.failed: set[str] = set()  # keys of the rows in the file recorded as failed (kept, not retried)
        self.done = self._resume(retry_failed)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def _resume(self, retry_failed: bool) -> set[str]:
        """Keys of the rows already in the file, which is created (header only) if missing."""
        header = _csv_line(self.columns)
        if os.path.exists(self.path):
            with open(self.path, "rb") as handle:
                data = handle.read()
            whole = data.rfind(b"\n") + 1  # a torn last line is a row that was in flight
            if whole < len(data):
                os.truncate(self.path, whole)
            if whole:
                return self._kept_keys(header, retry_failed)
        write_atomic(self.path, header)
        return set()

    def _kept_keys(self, header: str, retry_failed: bool) -> set[str]:
        table = read_table(self.path)
        if sorted(table.columns) != sorted(self.columns):
            raise InputError(f"{self.path}: has columns {', '.join(table.columns)}; this run writes "
                             f"{', '.join(self.columns)}: resume with the same manifest and engines "
                             "or choose another output")
        self.columns = table.columns  # the same columns (engines named in another order): keep the file's order
        header = _csv_line(self.columns)
        rows = table.rows
        if retry_failed and any(row["status"] != "ok" for row in rows):
            rows = [row for row in rows if row["status"] == "ok"]
            write_atomic(self.path, header + "".join(_csv_line(row[c] for c in self.columns) for row in rows))
        self.failed = {row[KEY] for row in rows if row["status"] != "ok"}
        return {row[KEY] for row in rows}

    def append(self, values: dict[str, str]) -> None:
        """Append one row with a single write and make it durable."""
        view = memoryview(_csv_line(values[c] for c in self.columns).encode("utf-8"))
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> ResultLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def plan_workers(rows: int, workers: int = 0, threads: int = 0) -> tuple[int, int]:
    """(workers, threads per worker): by default one worker per core, the cores shared out between them.
    Each of ``workers`` and ``threads`` is 0 (automatic) up to 4 per core."""
    workers, threads = thread_count(workers, "--workers"), thread_count(threads, "--threads")
    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, rows))
    return workers, threads or max(1, cores // workers)


def _score_locally(rows: list[ManifestRow], engines: list[Engine], options: FrameOptions, pool: str, device: str,
                   workers: int, threads: int) -> Iterator[dict[str, str]]:
    """Every row's output line, scored by ``workers`` threads (rows sharing a reference together), in the order
    they finish; on an interrupt the threads stop after their current frame."""
    cancel = threading.Event()
    with ThreadPoolExecutor(workers, thread_name_prefix="score-batch") as executor:
        futures = [executor.submit(score_rows, group, engines, options, pool, device, threads, cancel)
                   for group in ladder_groups(rows, workers)]
        try:
            for future in as_completed(futures):
                yield from future.result()
        except BaseException:
            cancel.set()
            for future in futures:
                future.cancel()
            raise


def _batch_engines(names: list[str], manifest: Manifest) -> list[Engine]:
    """The engines resolved, checked to write columns of their own: no manifest column may be named like a
    column the results add (the engines' columns, :data:`RESULT_COLUMNS`)."""
    if not names:
        raise InputError("no engine given: name at least one (an .onnx FR model, psnr, ssim, ms-ssim or vmaf)")
    clash = [column for column in manifest.columns if column in RESULT_COLUMNS]
    if clash:
        raise InputError(f"{manifest.path}: column {clash[0]!r} is one score-batch writes "
                         f"({', '.join(RESULT_COLUMNS)} and one per engine): rename it in the manifest")
    engines = [scoring_engine(name) for name in names]
    writers: dict[str, str] = {}
    for engine in engines:
        if engine.column in manifest.columns:
            raise InputError(f"{manifest.path}: column {engine.column!r} is the one engine {engine.name!r} writes: "
                             "rename it in the manifest")
        if engine.column in writers:
            raise InputError(f"engines {writers[engine.column]!r} and {engine.name!r} would both write column "
                             f"{engine.column!r}: give each engine once")
        writers[engine.column] = engine.name
    return engines


def run_batch(manifest_path: str, engines: list[str], output: str, options: FrameOptions = FrameOptions(), *,
              pool: str = "mean", workers: int = 0, threads: int = 0, device: str = "cpu",
              retry_failed: bool = False, progress: BatchProgress | None = None,
              fps: float | None = None, ray: RaySettings | None = None, notice: Notice | None = None) -> BatchSummary:
    """Score the manifest's rows not yet in ``output`` with every engine; rows are appended as they finish.

    Engines, manifest, options and output are checked before anything is scored (and, with ``ray``, the
    cluster: its size, and that its nodes read every file). ``fps`` is the frame rate of raw YUV rows
    without one in an ``fps`` column. Rows the output records as failed are scored again only with
    ``retry_failed``; otherwise they are counted in :attr:`BatchSummary.failed_before`. On an interrupt
    the workers stop and the rows they were scoring are not written. With ``ray``, the rows are scored on
    that Ray cluster (``workers`` is then ignored: ``ray.workers`` says how many); ``notice`` hears of lost workers.
    """
    if pool not in POOLS:
        raise InputError(f"unknown pooling {pool!r} (choose from {', '.join(POOLS)})")
    plan_workers(1, 0 if ray else workers, threads)  # checks them before the output is touched
    manifest = read_manifest(manifest_path, fps)
    resolved = _batch_engines(engines, manifest)
    files = [*(path for engine in resolved for path in engine.files),
             *(video.path for row in manifest.rows for video in (row.reference, row.distorted))]
    check_output_paths([output], [manifest_path, *files])
    columns = [*manifest.columns, *(e.column for e in resolved), *RESULT_COLUMNS]
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(ray_batch(ray, resolved, device, files, notice)) if ray else None
        log = stack.enter_context(ResultLog(output, columns, retry_failed))
        todo = [row for row in manifest.rows if row.key not in log.done]
        if cluster:
            lines = cluster.score(todo, options, pool, threads)
        else:
            workers, threads = plan_workers(len(todo), workers, threads)
            lines = _score_locally(todo, resolved, options, pool, device, workers, threads)
        scored = failed = 0
        for values in lines:
            log.append(values)
            scored += values["status"] == "ok"
            failed += values["status"] != "ok"
            if progress:
                progress(scored + failed, len(todo), failed)
    untrained = [engine.column for engine in resolved if engine.untrained]
    failed_before = len(log.failed & {row.key for row in manifest.rows})
    return BatchSummary(output, len(manifest.rows), len(manifest.rows) - len(todo), scored, failed,
                        cluster.workers if cluster else workers, untrained, failed_before,
                        cluster.lost if cluster else 0, cluster.retried if cluster else 0)
