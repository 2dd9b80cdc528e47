"""Quantization-step map -> encoder delta-QP map (pure NumPy).

For blocks k = 1..K of one frame, with QS_k > 0 the quantization step predicted
for block k (by the learned model or the activity baseline):

1. Bit ratio, normalised so the frame's average rate is preserved::

       r_k = (1 / QS_k) / mean_j(1 / QS_j)          (so mean_k r_k = 1)

2. Delta QP from the R-lambda model (lambda = alpha * bpp**beta, and HM's
   QP = 4.2005 ln(lambda) + 13.7122, about 3 QP per doubling of lambda)::

       dQP_k = 3 * beta * s * log2(r_k)

   beta is the R-lambda exponent, negative (-1.367 is HM/VTM's initial value);
   s is the adaptation slope (1.0; 1.2 adapts more aggressively). A block that
   should get more bits (small QS, r_k > 1) gets a lower QP.
3. Optional aggregation to a coarser grid (32, 64 or 128 pixels): the mean of the
   continuous dQP of the 16x16 blocks a cell covers (a mean in the log domain of
   r_k); cells on the right and bottom edges average the blocks that exist.
4. Clipping to +-max_delta (4 by default), then rounding to integers (half to even).
5. Legal range: the absolute QP ``base_qp + dQP_k`` is clipped to the codec's
   range (0..51 for HEVC 8-bit, 0..63 for VVC 10-bit) and the delta adjusted to
   match, so ``base_qp + delta`` is always a legal QP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vqa_rt.errors import InputError
from vqa_rt.runtime.checks import finite_number, whole_number

BLOCK = 16
GRIDS = (16, 32, 64, 128)
R_LAMBDA_BETA = -1.367
QP_RANGES = {"hevc": (0, 51), "vvc": (0, 63)}
PAPER_BASE_QPS = (22, 27, 32, 37)


def grid_shape(width: int, height: int, cell: int = BLOCK) -> tuple[int, int]:
    """(rows, cols) of ``cell`` x ``cell`` cells covering a frame, partial edge cells included."""
    return -(-height // cell), -(-width // cell)


def bit_ratio(qs: np.ndarray) -> np.ndarray:
    """r_k = (1/QS_k) / mean_j(1/QS_j): each block's share of the frame's bits, mean 1."""
    inverse = 1.0 / np.asarray(qs, dtype=np.float64)
    return inverse / inverse.mean()


def delta_qp(qs: np.ndarray, beta: float = R_LAMBDA_BETA, slope: float = 1.0) -> np.ndarray:
    """Continuous dQP_k = 3 * beta * slope * log2(r_k) (float64, unclipped)."""
    return 3.0 * beta * slope * np.log2(bit_ratio(qs))


def aggregate(delta: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` cells of 16x16-block values; partial edge cells average what exists."""
    if factor == 1:
        return delta
    rows, cols = delta.shape
    out_rows, out_cols = -(-rows // factor), -(-cols // factor)
    padded = np.full((out_rows * factor, out_cols * factor), np.nan)
    padded[:rows, :cols] = delta
    cells = padded.reshape(out_rows, factor, out_cols, factor)
    return np.nanmean(cells, axis=(1, 3))


def quantize(delta: np.ndarray, max_delta: int) -> np.ndarray:
    """Clip to +-max_delta and round to the nearest integer (half to even), as int8."""
    return np.rint(np.clip(delta, -max_delta, max_delta)).astype(np.int8)


def legal_delta(delta: np.ndarray, base_qp: int, qp_range: tuple[int, int]) -> np.ndarray:
    """The delta that keeps ``base_qp + delta`` inside ``qp_range`` (inclusive)."""
    low, high = qp_range
    return (np.clip(base_qp + delta.astype(np.int16), low, high) - base_qp).astype(np.int8)


@dataclass(frozen=True)
class QPConversion:
    """Every parameter of QS -> delta QP; :meth:`__call__` converts one frame's map."""

    base_qp: int = 32
    beta: float = R_LAMBDA_BETA
    slope: float = 1.0
    max_delta: int = 4
    grid: int = BLOCK
    codec: str = "hevc"

    def __post_init__(self) -> None:
        if not isinstance(self.codec, str) or self.codec not in QP_RANGES:
            raise InputError(f"unknown codec {self.codec!r} for the QP range (known: {', '.join(QP_RANGES)})")
        low, high = QP_RANGES[self.codec]
        whole_number(self.base_qp, "base QP", None)
        whole_number(self.max_delta, "max delta QP", None)
        finite_number(self.beta, "the R-lambda exponent beta")
        finite_number(self.slope, "slope")
        if not low <= self.base_qp <= high:
            raise InputError(f"base QP {self.base_qp} is outside the {self.codec} range {low}..{high}")
        if not self.beta < 0:
            raise InputError(f"the R-lambda exponent beta must be negative (HM/VTM: {R_LAMBDA_BETA}), got {self.beta}")
        if not self.slope > 0:
            raise InputError(f"slope must be positive (1.0 default, 1.2 aggressive), got {self.slope}")
        if not 0 <= self.max_delta <= high - low:
            raise InputError(f"max delta QP must be 0..{high - low}, got {self.max_delta}")
        if isinstance(self.grid, bool) or self.grid not in GRIDS:
            raise InputError(f"grid must be one of {', '.join(map(str, GRIDS))} pixels, got {self.grid}")

    @property
    def qp_range(self) -> tuple[int, int]:
        return QP_RANGES[self.codec]

    def __call__(self, qs: np.ndarray) -> np.ndarray:
        """int8 delta-QP map of one frame at ``grid`` pixels per cell from its 16x16-block QS map."""
        continuous = aggregate(delta_qp(qs, self.beta, self.slope), self.grid // BLOCK)
        return legal_delta(quantize(continuous, self.max_delta), self.base_qp, self.qp_range)

    def absolute(self, delta: np.ndarray) -> np.ndarray:
        """The absolute QP map ``base_qp + delta`` (uint8; legal by construction)."""
        return (self.base_qp + delta.astype(np.int16)).astype(np.uint8)
