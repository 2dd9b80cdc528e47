"""One decode, several engines: frames fan out to branches through bounded queues.

Each input video (by role: ``reference``, ``distorted``) is read once, in a reader
thread. Every :class:`Branch` (a scorer, a QP-map source) reads some of the roles and
selects frames with its own sampling; each frame it selects goes onto its bounded queue,
so the reader waits for the slowest branch and memory stays constant however long the
stream. Each branch runs in a worker thread of its own (pre-processing one step ahead in
a prefetch thread, inference in batches; ONNX Runtime and TensorRT release the GIL, so
branches run concurrently). Results come back to the calling thread, which hands each
branch its results in frame order as they arrive (:meth:`Branch.record`) and calls
``on_frame`` with a frame's results from every branch that selected it, in frame order,
as soon as the last of them is in.

A bad frame stops the reader, but the frames already handed out are still processed
and recorded before the error is raised; an error in a branch (or an interrupt) stops
everything at the next frame. Every branch's :meth:`Branch.close` learns how the run
ended, so it can keep what was computed.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import dataclasses
import queue
import threading
from typing import Any, Callable, Iterator

from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.sampling import FrameSampling
from vqa_rt.runtime.frames.selection import Step, check_pair, check_single, frames_in_step, pair_of
from vqa_rt.runtime.frames.video import VideoFormat, VideoReader
from vqa_rt.runtime.pipeline.queues import POLL, prefetch, put_until

QUEUE_DEPTH = 4  # frames waiting per branch (the prefetch thread holds as many again)
_END = object()

FrameCallback = Callable[[int, dict[str, Any]], None]


class Branch(abc.ABC):
    """One engine's share of a pipeline run.

    ``roles`` are the videos it reads: a reference and a distorted video (it gets a
    :class:`FramePair`), one video (it gets that video's frames), or a reference and several
    distorted videos (it gets each :class:`Step`, see :meth:`item`). Every video after the first
    must pair with the first.
    """

    name: str
    roles: tuple[str, ...]
    batch_size: int = 1

    @abc.abstractmethod
    def sampling(self) -> FrameSampling:
        """Which frames this branch takes."""

    @abc.abstractmethod
    def start(self, formats: dict[str, VideoFormat], total: int | None) -> None:
        """Open engines and outputs, knowing the videos' formats and how many frames it will take
        (None: unknown). Runs in the calling thread before any frame is read."""

    def item(self, step: Step) -> Any:
        """What the branch gets of a step it selects: a pair of its two videos' frames, or its one video's frame."""
        if len(self.roles) == 2:
            return pair_of(step, *self.roles)
        return step.frames[self.roles[0]]

    @abc.abstractmethod
    def prepare(self, item: Any) -> Any:
        """Per-frame work that overlaps inference (colour conversion...); runs in the branch's prefetch thread."""

    @abc.abstractmethod
    def infer(self, indices: list[int], prepared: list[Any]) -> list[tuple[int, Any]]:
        """Outputs for a batch of prepared frames, as ``(frame index, output)`` in frame order; a branch
        whose engine needs later frames may return fewer and owe the rest (see :meth:`finish`)."""

    def finish(self) -> list[tuple[int, Any]]:
        """Outputs still owed after the last batch."""
        return []

    @abc.abstractmethod
    def record(self, index: int, output: Any) -> None:
        """Keep one frame's output (calling thread, frame order)."""

    def frame_line(self, output: Any) -> Any:
        """The JSON-ready form of one frame's output for per-frame results lines."""
        return output

    @abc.abstractmethod
    def close(self, error: BaseException | None) -> None:
        """Release what :meth:`start` opened; ``error`` is why the run stopped (None: it completed)."""

    @property
    @abc.abstractmethod
    def results(self) -> dict[str, Any]:
        """What the branch has produced so far, as its results file holds it (``frames``, ``complete``, ...)."""

    @abc.abstractmethod
    def run_entry(self) -> dict[str, Any]:
        """What a run summary says of the branch besides its frames, completeness and speed."""


@dataclasses.dataclass
class _Lane:
    """A branch's place in a run: what it selects, its queue and its worker."""

    branch: Branch
    wanted: Iterator[int]
    target: int | None
    queue: queue.Queue
    taken: int = 0


def _selection(branch: Branch, readers: dict[str, VideoReader]) -> tuple[Iterator[int], int | None]:
    """The frame indices ``branch`` takes and how many (None: unknown), after checking its videos."""
    sampling = branch.sampling()
    mine = [readers[role] for role in branch.roles]
    if len(mine) == 1:
        total = check_single(mine[0], sampling) or mine[0].frame_count
    else:
        totals = [check_pair(mine[0], other, sampling) for other in mine[1:]]
        total = None if None in totals else min(totals)
    fps = next((reader.format.fps for reader in mine if reader.format.fps), None)
    return sampling.indices(total, fps), sampling.count_selected(total, fps)


class _Run:
    def __init__(self, readers: dict[str, VideoReader], lanes: list[_Lane], on_frame: FrameCallback | None):
        self.readers, self.lanes, self.on_frame = readers, lanes, on_frame
        self.events: queue.Queue = queue.Queue()  # (kind, lane, payload) from the reader and the workers
        self.stop = threading.Event()
        self.pending: dict[int, tuple[set[str], dict[str, Any]]] = {}  # frame -> (branches owed, outputs)
        self.order: collections.deque[int] = collections.deque()  # frames announced, not yet passed on

    # ------------------------------------------------------------ reader thread
    def read(self) -> None:
        error = None
        try:
            live = [lane for lane in self.lanes if lane.target is not None]
            steps = frames_in_step(self.readers)
            while live and not self.stop.is_set() and (step := next(steps, None)) is not None:
                takers = [lane for lane in live if lane.target == step.index]
                if takers:
                    self.events.put(("frame", step.index, {lane.branch.name for lane in takers}))
                for lane in takers:
                    if not put_until(lane.queue, (step.index, lane.branch.item(step)), self.stop):
                        return
                    lane.taken += 1
                    lane.target = next(lane.wanted, None)
                live = [lane for lane in live if lane.target is not None]
            for lane in self.lanes:
                if lane.taken == 0:
                    raise InputError(f"frame skip {lane.branch.sampling().skip} leaves no frames "
                                     "(the video is shorter)")
        except BaseException as exc:  # the caller raises it once the branches have used every frame handed out
            error = exc
        finally:
            for lane in self.lanes:
                put_until(lane.queue, (_END, None), self.stop)
            self.events.put(("reader done", None, error))

    # ------------------------------------------------------------ worker threads
    def _items(self, lane: _Lane) -> Iterator[tuple[int, Any]]:
        while not self.stop.is_set():
            try:
                index, item = lane.queue.get(timeout=POLL)
            except queue.Empty:
                continue
            if index is _END:
                return
            yield index, item

    def work(self, lane: _Lane) -> None:
        branch = lane.branch
        try:
            prepared = prefetch((index, branch.prepare(item)) for index, item in self._items(lane))
            batch: list[tuple[int, Any]] = []
            for entry in prepared:
                batch.append(entry)
                if len(batch) == branch.batch_size:
                    self.events.put(("outputs", lane, branch.infer(*map(list, zip(*batch)))))
                    batch = []
            if batch:
                self.events.put(("outputs", lane, branch.infer(*map(list, zip(*batch)))))
            if not self.stop.is_set():
                self.events.put(("outputs", lane, branch.finish()))
            self.events.put(("worker done", lane, None))
        except BaseException as exc:
            self.events.put(("worker done", lane, exc))

    # ------------------------------------------------------------ calling thread
    def _outputs(self, lane: _Lane, outputs: list[tuple[int, Any]]) -> None:
        name = lane.branch.name
        for index, output in outputs:
            lane.branch.record(index, output)
            owed, got = self.pending[index]
            got[name] = lane.branch.frame_line(output)
            owed.discard(name)
        while self.order and not self.pending[self.order[0]][0]:
            index = self.order.popleft()
            _, got = self.pending.pop(index)
            if self.on_frame is not None:
                self.on_frame(index, got)

    def run(self) -> None:
        threads = [threading.Thread(target=self.read, name="pipeline-reader", daemon=True)]
        threads += [threading.Thread(target=self.work, args=(lane,), name=f"pipeline-{lane.branch.name}", daemon=True)
                    for lane in self.lanes]
        running, first_error = len(threads), None
        for thread in threads:
            thread.start()
        while running:
            try:
                kind, lane, payload = self.events.get(timeout=POLL)
                if kind == "frame":
                    self.pending[lane] = (set(payload), {})
                    self.order.append(lane)
                elif kind == "outputs":
                    self._outputs(lane, payload)
                else:
                    running -= 1
                    if payload is not None and first_error is None:
                        first_error = payload
                        if lane is not None:  # a branch failed: the others need not go on
                            self.stop.set()
            except queue.Empty:
                continue
            except BaseException as exc:  # an interrupt, or on_frame failed: stop, keep what is finished
                first_error = first_error or exc
                self.stop.set()
        for thread in threads:
            thread.join(timeout=1.0)  # a reader blocked on a stalled FIFO is a daemon: let it be
        if first_error is not None:
            raise first_error


def check_selections(readers: dict[str, VideoReader], branches: list[Branch]) -> None:
    """What :func:`run_pipeline` checks before it starts a branch, for callers that must know before they write
    anything: every branch has its videos and can select its frames of them (they pair, the skip leaves
    frames, per-second sampling has a frame rate)."""
    for branch in branches:
        missing = [role for role in branch.roles if role not in readers]
        if missing:
            raise InputError(f"{branch.name} needs the {' and the '.join(missing)} video")
        _selection(branch, readers)


def run_pipeline(readers: dict[str, VideoReader], branches: list[Branch],
                 on_frame: FrameCallback | None = None) -> None:
    """Read the videos once and run every branch over the frames it selects (see the module's text).

    ``readers`` are open videos by role; every branch is started before any frame is
    read and closed, with the run's error or None, whatever happens.
    """
    names = [branch.name for branch in branches]
    if len(set(names)) != len(names):
        raise ValueError(f"branch names must differ: {names}")
    formats = {role: reader.format for role, reader in readers.items()}
    with contextlib.ExitStack() as stack:
        lanes = []
        for branch in branches:
            missing = [role for role in branch.roles if role not in readers]
            if missing:
                raise InputError(f"{branch.name} needs the {' and the '.join(missing)} video")
            wanted, total = _selection(branch, readers)
            branch.start(formats, total)
            stack.push(lambda _type, error, _traceback, branch=branch: branch.close(error))
            lanes.append(_Lane(branch, wanted, next(wanted, None), queue.Queue(maxsize=QUEUE_DEPTH)))
        _Run({role: readers[role] for role in readers if any(role in b.roles for b in branches)},
             lanes, on_frame).run()
