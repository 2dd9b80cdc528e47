"""Mappings from raw objective scores to the MOS scale, fitted once per method.

- ``linear``: ``a·x + b`` by least squares (the seed: one linear mapping of raw scores).
- ``logistic4``: VQEG's ``(b1 − b2) / (1 + exp(−(x − b3) / |b4|)) + b2``.
- ``logistic5``: VQEG's ``b1·(1/2 − 1 / (1 + exp(b2·(x − b3)))) + b4·x + b5``.
- ``none``: the raw scores themselves.

The logistic fits are non-linear least squares (SciPy's ``curve_fit``) started from
the data's range, centre and spread, in the direction of the linear trend.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vqa_rt.errors import EvaluationError

MAPPINGS = ("linear", "logistic4", "logistic5", "none")


def _linear(x, a, b):
    return a * x + b


def _logistic4(x, b1, b2, b3, b4):
    return (b1 - b2) / (1 + np.exp(-(x - b3) / np.abs(b4))) + b2


def _logistic5(x, b1, b2, b3, b4, b5):
    return b1 * (0.5 - 1 / (1 + np.exp(b2 * (x - b3)))) + b4 * x + b5


_FUNCTIONS: dict[str, Callable] = {"linear": _linear, "logistic4": _logistic4, "logistic5": _logistic5}


@dataclass(frozen=True)
class Mapping:
    """A fitted mapping: call it on raw scores to get predicted MOS."""

    kind: str
    params: tuple[float, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "none":
            return x
        with np.errstate(over="ignore"):  # exp overflows to inf far from the centre: the curve's asymptote
            return _FUNCTIONS[self.kind](x, *self.params)


def _start(kind: str, x: np.ndarray, y: np.ndarray, slope: float) -> list[float]:
    """Initial parameters: the logistic spans MOS's range, centred on the scores, rising like the trend."""
    low, high = float(y.min()), float(y.max())
    centre, spread = float(np.median(x)), float(x.std())
    if kind == "logistic4":
        return [high, low, centre, spread] if slope >= 0 else [low, high, centre, spread]
    return [(high - low) * np.sign(slope or 1), 1 / spread, centre, 0.0, float(y.mean())]


def fit_mapping(kind: str, x: np.ndarray, y: np.ndarray) -> Mapping:
    """Fit ``kind`` (one of :data:`MAPPINGS`) from raw scores ``x`` to MOS ``y``."""
    if kind not in MAPPINGS:
        raise EvaluationError(f"unknown mapping {kind!r} (choose from {', '.join(MAPPINGS)})")
    if kind == "none":
        return Mapping(kind, ())
    from scipy import optimize, stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(x) == 0:
        raise EvaluationError(f"cannot fit a {kind} mapping: every score is {x[0]:g}")
    line = stats.linregress(x, y)
    if kind == "linear":
        return Mapping(kind, (float(line.slope), float(line.intercept)))
    start = _start(kind, x, y, float(line.slope))
    if len(x) <= len(start):
        raise EvaluationError(f"cannot fit a {kind} mapping ({len(start)} parameters) to {len(x)} rows")
    try:
        with warnings.catch_warnings(), np.errstate(over="ignore"):
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(_FUNCTIONS[kind], x, y, p0=start, maxfev=20000)
    except RuntimeError as exc:
        raise EvaluationError(f"the {kind} mapping did not converge ({exc}); try --mapping linear") from None
    return Mapping(kind, tuple(float(p) for p in params))
