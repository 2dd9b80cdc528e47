"""Result files that are always valid: each write goes to a temporary file that
replaces the target atomically, so an interrupted run leaves the last complete
snapshot, never a torn file."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from typing import Any, Callable


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (same-directory temp file + rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


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

    def update(self, result: dict[str, Any], force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            for path, render in self.targets:
                write_atomic(path, render(result))
            self._last = now
