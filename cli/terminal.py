"""What the commands say on the terminal besides results: progress (only when stderr is a terminal) and
the untrained-weights note."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator

UNTRAINED_WARNING = "note: UNTRAINED weights (seeded random init): scores are not meaningful quality predictions"
_BAR_WIDTH = 30


def on_terminal() -> bool:
    """Whether stderr is a terminal (it may be closed: ``2>&-``)."""
    return sys.stderr is not None and sys.stderr.isatty()


@contextlib.contextmanager
def progress_line(show: Callable) -> Iterator[Callable | None]:
    """``show`` (a progress callback redrawing one line of stderr) on a terminal, None elsewhere; the line
    is ended when the block ends, however it ends."""
    if not on_terminal():
        yield None
        return
    try:
        yield show
    finally:
        print(file=sys.stderr)


def frame_progress(verb: str) -> contextlib.AbstractContextManager[Callable[[int, int | None], None] | None]:
    """Frames done (of the total, when known): ``scored 12/240 frames``."""

    def show(done: int, total: int | None) -> None:
        print(f"\r{verb} {done}{f'/{total}' if total else ''} frames", end="", file=sys.stderr, flush=True)

    return progress_line(show)


def rows_progress() -> contextlib.AbstractContextManager[Callable[[int, int, int], None] | None]:
    """A bar of rows done and failed, time spent and left."""
    start = time.monotonic()

    def show(done: int, total: int, failed: int) -> None:
        elapsed = time.monotonic() - start
        filled = _BAR_WIDTH * done // max(total, 1)
        left = elapsed / done * (total - done)
        print(f"\r[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {done}/{total} rows, {failed} failed, "
              f"{elapsed:.0f} s, about {left:.0f} s left ", end="", file=sys.stderr, flush=True)

    return progress_line(show)
