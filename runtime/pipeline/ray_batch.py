"""``score-batch --ray``: the rows of a batch scored by workers on a Ray cluster, the results written by
the driver alone.

Each worker is a Ray actor holding the engines open (:func:`~vqa_rt.runtime.engines.runners.warm_runners`)
and scoring one group of rows at a time (rows sharing a reference, :func:`~.rows.ladder_groups`; one row
where none share), exactly as a local worker does. The driver's scheduler keeps :data:`IN_FLIGHT` groups
queued per worker (back-pressure: a group is sent only when a worker has room) and yields each row's output
line once. A worker lost with its process or its node fails its calls with a ``RayActorError``: its groups go
back to the queue for other workers, at most ``max_retries`` times each (then their rows are recorded as
failed), and a replacement worker is started. Ray itself never retries a call, so each row is, at any time,
in exactly one place: queued, in one worker's calls, or written, once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import vqa_rt
from vqa_rt.errors import ClusterError, InputError
from vqa_rt.runtime.checks import whole_number
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.engines.runners import preload, warm_runners
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.pipeline.manifest import ManifestRow
from vqa_rt.runtime.pipeline.ray_cluster import WorkerShape, check_nodes_read, connect, worker_nodes
from vqa_rt.runtime.pipeline.rows import failed_row, ladder_groups, one_line, score_rows

IN_FLIGHT = 2  # groups queued per worker: one scoring, the next waiting, so a worker never idles for a round trip
NO_WORKER_TIMEOUT_S = 120.0  # with rows left and no worker alive this long, the batch stops (rerun to resume)
WAIT_S = 1.0

Notice = Callable[[str], None]


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide a batch runs on Ray: the cluster's ``address`` (``auto`` or the head's HOST:PORT),
    ``workers`` (0: as many as the cluster holds), what each reserves, and the retries of a lost worker's rows."""

    address: str
    workers: int = 0
    shape: WorkerShape = field(default_factory=WorkerShape)
    max_retries: int = 2

    def __post_init__(self):
        whole_number(self.workers, "--workers")
        whole_number(self.max_retries, "--max-retries", 0, 100)


class RowWorker:
    """One Ray worker: the engines opened once, kept warm, then groups of rows scored one at a time."""

    def __init__(self, engines: list[Engine], options: FrameOptions, pool: str, device: str, threads: int):
        self.args = (engines, options, pool, device, threads)
        self.cancel = threading.Event()  # never set: an interrupted driver ends its workers
        self.error = None
        self.warm = warm_runners()
        self.warm.__enter__()
        try:
            preload(engines, device, threads)
        except Exception as exc:  # reported by info(), so the driver stops with one line
            self.error = one_line(exc)

    def info(self) -> dict[str, Any]:
        """Where the worker runs, its vqa-rt version, and the error that kept its engines from opening, if any."""
        return {"pid": os.getpid(), "host": socket.gethostname(), "version": vqa_rt.__version__, "error": self.error}

    def score(self, rows: list[ManifestRow]) -> list[dict[str, str]]:
        return score_rows(rows, *self.args, self.cancel)


@dataclass(eq=False)
class _Worker:
    handle: Any
    number: int
    calls: set = field(default_factory=set)  # its rows in flight (object refs)
    host: str = ""
    pid: int = 0

    def __str__(self) -> str:
        return f"worker {self.number}" + (f" (pid {self.pid} on {self.host})" if self.pid else "")


@contextlib.contextmanager
def ray_batch(settings: RaySettings, engines: list[Engine], device: str, files: list[str],
              notice: Notice | None = None) -> Iterator[RayBatch]:
    """Connected to the batch's Ray cluster for the block, once it is checked to hold the workers asked for
    and every node that can host one is checked to read ``files``."""
    if (device != "cpu" or any(e.format == "plan" for e in engines)) and not settings.shape.gpus:
        raise InputError("on Ray, --device cuda and TensorRT plans need --gpus-per-worker (0.5: two workers "
                         "share a GPU)")
    with connect(settings.address) as ray:
        nodes = check_nodes_read(ray, worker_nodes(ray, settings.shape), files)
        capacity, shape = sum(nodes.values()), settings.shape
        if settings.workers > capacity or not capacity:
            raise ClusterError(f"the Ray cluster at {settings.address} holds {capacity} workers of {shape.cpus:g} "
                               f"CPU and {shape.gpus:g} GPU, not {settings.workers or 1}: ask for fewer (--workers, "
                               "--cpus-per-worker, --gpus-per-worker) or add nodes")
        yield RayBatch(ray, settings, engines, device, capacity, notice or (lambda message: None))


class RayBatch:
    """A batch on a checked Ray cluster (from :func:`ray_batch`): :meth:`score` runs its rows, and counts the
    workers lost and the rows sent again."""

    def __init__(self, ray, settings: RaySettings, engines: list[Engine], device: str, capacity: int,
                 notice: Notice):
        self.ray, self.settings, self.engines, self.device = ray, settings, engines, device
        self.capacity, self.notice = capacity, notice
        self.workers = self.lost = self.retried = 0

    def score(self, rows: list[ManifestRow], options: FrameOptions, pool: str, threads: int) -> Iterator[dict]:
        """Every row's output line, once, in the order they finish."""
        self.workers = min(self.settings.workers or self.capacity, len(rows))
        threads = threads or max(1, int(self.settings.shape.cpus))
        actor = self.ray.remote(max_restarts=0, max_task_retries=0)(RowWorker).options(
            **self.settings.shape.options())
        schedule = _Schedule(self, lambda: actor.remote(self.engines, options, pool, self.device, threads))
        return schedule.run(ladder_groups(rows, self.workers))


class _Schedule:
    """One run of the driver's scheduler over groups of rows (see the module's docstring)."""

    def __init__(self, batch: RayBatch, start_worker: Callable[[], Any]):
        self.batch, self.ray, self.start_worker = batch, batch.ray, start_worker
        from ray.exceptions import RayActorError

        self.lost_error = RayActorError
        self.pending: deque[tuple[list[ManifestRow], int]] = deque()  # (group, times its worker was lost)
        self.calls: dict[Any, tuple[_Worker, list[ManifestRow], int]] = {}
        self.starting: dict[Any, _Worker] = {}
        self.ready: list[_Worker] = []
        self.started = self.failed_starts = 0

    def _start(self) -> None:
        self.started += 1
        worker = _Worker(self.start_worker(), self.started)
        self.starting[worker.handle.info.remote()] = worker

    def run(self, groups: list[list[ManifestRow]]) -> Iterator[dict]:
        self.pending.extend((group, 0) for group in groups)
        for _ in range(self.batch.workers):
            self._start()
        alone_since = time.monotonic()
        try:
            while self.pending or self.calls:
                self._send()
                if self.ready:
                    alone_since = time.monotonic()
                elif time.monotonic() - alone_since > NO_WORKER_TIMEOUT_S:
                    left = sum(len(group) for group, _ in self.pending)
                    raise ClusterError(f"no Ray worker has been running for {NO_WORKER_TIMEOUT_S:.0f} s (the "
                                       f"cluster lost its nodes?): {left} rows not scored; rerun to resume")
                done, _ = self.ray.wait([*self.calls, *self.starting], num_returns=1, timeout=WAIT_S)
                for ref in done:
                    yield from self._finished(ref)
        finally:
            for worker in [*self.ready, *self.starting.values()]:
                self._kill(worker)

    def _kill(self, worker: _Worker) -> None:
        try:
            self.ray.kill(worker.handle)
        except Exception:  # already gone with its node
            pass

    def _send(self) -> None:
        for worker in self.ready:
            while self.pending and len(worker.calls) < IN_FLIGHT:
                group, lost = self.pending.popleft()
                ref = worker.handle.score.remote(group)
                worker.calls.add(ref)
                self.calls[ref] = (worker, group, lost)

    def _finished(self, ref) -> list[dict]:
        if ref in self.starting:
            self._started(self.starting.pop(ref), ref)
            return []
        worker, group, lost = self.calls.pop(ref)
        worker.calls.discard(ref)
        try:
            return self.ray.get(ref)
        except self.lost_error as exc:
            return self._lose(worker, exc, (group, lost))
        except Exception as exc:  # the call itself failed (the worker lives): its rows record it
            return [failed_row(row, self.batch.engines, f"ray: {one_line(exc)}") for row in group]

    def _started(self, worker: _Worker, ref) -> None:
        try:
            info = self.ray.get(ref)
        except self.lost_error as exc:
            self._lose(worker, exc, None)
            return
        if info["error"]:
            raise ClusterError(f"a Ray worker on {info['host']} cannot open the engines: {info['error']}")
        if info["version"] != vqa_rt.__version__:
            raise ClusterError(f"the Ray worker on {info['host']} runs vqa-rt {info['version']}, this machine "
                               f"{vqa_rt.__version__}: install the same version on every node")
        worker.host, worker.pid = info["host"], info["pid"]
        self.ready.append(worker)

    def _lose(self, worker: _Worker, error: Exception, call: tuple[list[ManifestRow], int] | None) -> list[dict]:
        """A worker gone with its process or node (``call``: the group whose call told): its groups back to the
        queue, or their rows recorded as failed once they have lost ``max_retries`` + 1 workers; a replacement
        started while rows remain."""
        if worker in self.ready:
            self.ready.remove(worker)
        elif call is None:  # lost before it started
            self.failed_starts += 1
            if self.failed_starts > 2 * self.batch.workers:
                raise ClusterError(f"Ray workers keep dying as they start ({one_line(error)[:200]})")
        self._kill(worker)
        groups = [call] if call else []
        for ref in list(worker.calls):
            groups.append(self.calls.pop(ref)[1:])
        worker.calls.clear()
        self.batch.lost += 1
        reason = one_line(error).split(". ")[0][:160]
        failed, retry = [], []
        for group, lost in groups:
            (failed if lost + 1 > self.batch.settings.max_retries else retry).append((group, lost + 1))
        self.pending.extendleft(reversed(retry))
        retried = sum(len(group) for group, _ in retry)
        self.batch.retried += retried
        self.batch.notice(f"Ray {worker} lost ({reason}): {retried} rows sent to other workers, "
                          f"{sum(len(group) for group, _ in failed)} recorded as failed "
                          f"(--max-retries {self.batch.settings.max_retries})")
        if self.pending or self.calls:
            self._start()
        return [failed_row(row, self.batch.engines, f"ray: its worker was lost {lost} time{'s' * (lost > 1)} "
                                                     f"(last: {reason})") for group, lost in failed for row in group]
