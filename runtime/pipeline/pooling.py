"""Pooling of per-frame metrics into video-level values (libvmaf's names, plus a low percentile)."""

from __future__ import annotations

import numpy as np

LOW_PERCENTILE = 5


def pool(values: list[float] | np.ndarray) -> dict[str, float | None]:
    """min, max, mean, harmonic mean and 5th percentile of per-frame values.

    The harmonic mean is the plain one, n / sum(1/x), defined only when every
    value is positive (FR scores on the DCR scale are, 1..7); otherwise it is None.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return {"min": None, "max": None, "mean": None, "harmonic_mean": None, f"p{LOW_PERCENTILE}": None}
    harmonic = float(array.size / np.sum(1.0 / array)) if np.all(array > 0) else None
    return {
        "min": float(array.min()),
        "max": float(array.max()),
        "mean": float(array.mean()),
        "harmonic_mean": harmonic,
        f"p{LOW_PERCENTILE}": float(np.percentile(array, LOW_PERCENTILE)),
    }
