"""Result files that are always valid: each write goes to a temporary file that
replaces the target atomically, so an interrupted run leaves the last complete
snapshot, never a torn file."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from typing import IO, Any, Callable, Iterator

from vqa_rt.errors import InputError


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (through symbolic or hard links too; paths not yet made: by real path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_paths(paths: list[str], inputs: list[str | None] = ()) -> None:
    """The gate every command's outputs pass before any work: raise :class:`InputError` if the directory of an
    output does not exist, or an output is the same file as an input or as another output (by name, symbolic or
    hard link). Inputs that are no files (None, ``-`` for stdin, a baseline metric's name) are passed over."""
    inputs = [source for source in inputs if source and source != "-" and os.path.exists(source)]
    for index, path in enumerate(paths):
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise InputError(f"{path}: output directory {directory} does not exist")
        for source in inputs:
            if _same_file(path, source):
                raise InputError(f"{path}: this output is the input {source}; choose another output path")
        for other in paths[:index]:
            if _same_file(path, other):
                raise InputError(f"{path}: written twice (also as {other}); give each output its own path")


@contextlib.contextmanager
def open_atomic(path: str, mode: str = "w") -> Iterator[IO]:
    """A same-directory temp file that replaces ``path`` when the block succeeds.

    ``mode`` is ``"w"`` (UTF-8 text) or ``"wb"``. If the block raises, the temp file
    is removed and ``path`` is left as it was: never half-written.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    text = {"encoding": "utf-8", "newline": ""} if "b" not in mode else {}
    try:
        with open(tmp, mode, **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (same-directory temp file + rename)."""
    with open_atomic(path) as handle:
        handle.write(text)


def render_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2) + "\n"


def render_csv(result: dict[str, Any]) -> str:
    """One row per frame: frameNum then every metric, in the order of the first frame."""
    frames = result["frames"]
    metrics = list(frames[0]["metrics"]) if frames else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["frameNum", *metrics])
    for frame in frames:
        writer.writerow([frame["frameNum"], *(f"{frame['metrics'][m]:.6f}" for m in metrics)])
    return buffer.getvalue()


class SnapshotWriter:
    """Writes snapshots of a growing result to several files at most every ``interval`` seconds."""

    def __init__(self, targets: list[tuple[str, Callable[[dict[str, Any]], str]]], interval: float = 1.0):
        self.targets = targets
        self.interval = interval
        self._last = float("-inf")

    def due(self) -> bool:
        """Whether :meth:`update` would write now (there are targets and the interval has passed)."""
        return bool(self.targets) and time.monotonic() - self._last >= self.interval

    def update(self, result: dict[str, Any], force: bool = False) -> None:
        if force or self.due():
            for path, render in self.targets:
                write_atomic(path, render(result))
            self._last = time.monotonic()
