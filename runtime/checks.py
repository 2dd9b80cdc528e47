"""Typed checks of the numbers users give (options, manifest fields, serve job fields), in one place.

Each check raises :class:`~vqa_rt.errors.InputError` naming the value and what it must be, so a bad
number is refused before any video is opened or any file is written: booleans are not numbers here,
and NaN and infinities are never accepted.
"""

from __future__ import annotations

import math
import os
from numbers import Real

from vqa_rt.errors import InputError

THREADS_PER_CORE = 4  # threads or workers beyond this many per core only slow a run down (or stall it)


def whole_number(value: object, what: str, minimum: int | None = 0, maximum: int | None = None) -> int:
    """``value`` as an int in ``minimum..maximum`` (None: no bound that side; both None: any int)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise InputError(f"{what} must be {minimum} or more, got {value}")
    if maximum is not None and value > maximum:
        raise InputError(f"{what} must be at most {maximum}, got {value}")
    return value


def finite_number(value: object, what: str, *, above: float | None = None, at_least: float | None = None,
                  below: float | None = None, at_most: float | None = None) -> float:
    """``value`` as a finite float within the bounds given (``above``/``below`` exclusive)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    value = float(value)
    for bound, fails, word in ((above, lambda b: value <= b, "greater than"), (at_least, lambda b: value < b,
                               "at least"), (below, lambda b: value >= b, "less than"),
                              (at_most, lambda b: value > b, "at most")):
        if bound is not None and fails(bound):
            raise InputError(f"{what} must be {word} {bound:g}, got {value:g}")
    return value


def max_threads() -> int:
    """The most threads (or workers) one option may ask for on this machine: :data:`THREADS_PER_CORE` per core."""
    return THREADS_PER_CORE * (os.cpu_count() or 1)


def thread_count(value: object, what: str = "--threads") -> int:
    """A thread or worker count: 0 (automatic: one per core) up to :func:`max_threads`."""
    limit = max_threads()
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= limit:
        raise InputError(f"{what} must be 0 (automatic) to {limit} ({THREADS_PER_CORE} per core on this machine, "
                         f"more only stalls), got {value}")
    return whole_number(value, what, 0, limit)
