"""Full-reference image metrics on one luma plane: PSNR, SSIM and MS-SSIM, vectorised.

- PSNR: ``10·log10(peak² / MSE)`` with ``peak = 2^bits − 1``, as ffmpeg's ``psnr``
  filter; capped at ``6·bits + 12`` dB (libvmaf's cap) so identical frames are finite.
- SSIM: Wang et al. (2004) with an 11×11 Gaussian window (σ = 1.5), K1 = 0.01,
  K2 = 0.03, averaged over the windows that fit inside the frame, no downsampling:
  libvmaf's ``float_ssim`` with ``scale=1``.
- MS-SSIM: five scales with Wang's exponents; each scale's luminance, contrast and
  structure terms are averaged over the frame before the exponents are applied and
  the scales are decimated by 2 after the 9/7 biorthogonal wavelet low-pass filter
  (symmetric edges): libvmaf's ``float_ms_ssim`` (except that a negative mean term,
  where libvmaf gives NaN, counts as 0).

SSIM and MS-SSIM see samples on the 8-bit scale (higher bit depths divided by
``2^(bits − 8)``) with L = 255, as libvmaf does.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_WINDOW = cv2.getGaussianKernel(11, 1.5).astype(np.float32)
_HALF = len(_WINDOW) // 2  # filtered values this close to an edge use samples from outside: dropped
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
_C3 = _C2 / 2
# Cohen-Daubechies-Feauveau 9/7 analysis low-pass filter, normalised to unit DC gain.
_LOW_PASS = np.array(
    [0.026748757411, -0.016864118443, -0.078223266529, 0.266864118443, 0.602949018236,
     0.266864118443, -0.078223266529, -0.016864118443, 0.026748757411], np.float32
)
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIZE = 11 * 2 ** (len(MS_SSIM_WEIGHTS) - 1)  # the window must fit the coarsest scale


def psnr_cap(bit_depth: int) -> float:
    """The highest PSNR reported, in dB (libvmaf's default)."""
    return 6.0 * bit_depth + 12.0


def psnr(ref: np.ndarray, dist: np.ndarray, bit_depth: int) -> float:
    """PSNR in dB of integer sample planes of ``bit_depth`` bits."""
    diff = ref.astype(np.int64) - dist.astype(np.int64)
    mse = float(np.mean(diff * diff))
    peak = float((1 << bit_depth) - 1)
    return psnr_cap(bit_depth) if mse == 0 else min(float(10.0 * np.log10(peak * peak / mse)), psnr_cap(bit_depth))


def to_8bit_scale(plane: np.ndarray, bit_depth: int) -> np.ndarray:
    """float32 samples on the 8-bit scale, the input SSIM and MS-SSIM expect."""
    return plane.astype(np.float32) / np.float32(1 << (bit_depth - 8))


def _local(plane: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local means at the positions where the whole window fits."""
    return cv2.sepFilter2D(plane, -1, _WINDOW, _WINDOW, borderType=cv2.BORDER_REFLECT)[_HALF:-_HALF, _HALF:-_HALF]


@dataclass(frozen=True)
class LocalStatistics:
    """A float32 plane with its Gaussian-weighted local means and variances where the window fits: what
    SSIM needs of one side, computed once for a reference measured against several renditions."""

    plane: np.ndarray
    mean: np.ndarray
    variance: np.ndarray


def local_statistics(plane: np.ndarray) -> LocalStatistics:
    """The local means and variances of a float32 plane."""
    mean = _local(plane)
    return LocalStatistics(plane, mean, _local(plane * plane) - mean * mean)


def _moments(x: LocalStatistics, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Local means, variances and covariance of a reference (its statistics) and a float32 plane."""
    y_statistics = local_statistics(y)
    cov = _local(x.plane * y) - x.mean * y_statistics.mean
    return x.mean, y_statistics.mean, x.variance, y_statistics.variance, cov


def ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM of two float32 planes on the 8-bit scale (at least 11×11)."""
    return ssim_against(local_statistics(x), y)


def ssim_against(x: LocalStatistics, y: np.ndarray) -> float:
    """Mean SSIM of a reference (its :func:`local_statistics`) and a float32 plane on the 8-bit scale.

    The closed form ``(2·μx·μy + C1)(2·σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))``,
    which equals the product of :func:`ssim_terms` since C3 = C2 / 2.
    """
    mu_x, mu_y, var_x, var_y, cov = _moments(x, y)
    mu_xy = mu_x * mu_y
    ratio = ((2 * mu_xy + _C1) * (2 * cov + _C2)) / ((mu_x * mu_x + mu_y * mu_y + _C1) * (var_x + var_y + _C2))
    return float(np.mean(ratio, dtype=np.float64))


def ssim_terms(x: LocalStatistics, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Luminance, contrast and structure maps of a reference (its statistics) and a float32 plane."""
    mu_x, mu_y, var_x, var_y, cov = _moments(x, y)
    var_x, var_y = np.maximum(var_x, 0), np.maximum(var_y, 0)
    sigma_xy = np.sqrt(var_x * var_y)
    # Flat identical windows can leave a rounding-negative covariance: structure is then 1.
    cov = np.where((cov < 0) & (sigma_xy <= 0), 0, cov)
    luminance = (2 * mu_x * mu_y + _C1) / (mu_x * mu_x + mu_y * mu_y + _C1)
    contrast = (2 * sigma_xy + _C2) / (var_x + var_y + _C2)
    structure = (cov + _C3) / (sigma_xy + _C3)
    return luminance, contrast, structure


def _decimate(plane: np.ndarray) -> np.ndarray:
    filtered = cv2.sepFilter2D(plane, -1, _LOW_PASS, _LOW_PASS, borderType=cv2.BORDER_REFLECT)
    return filtered[::2, ::2]


def ms_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """MS-SSIM of two float32 planes on the 8-bit scale (at least ``MS_SSIM_MIN_SIZE`` per side)."""
    return ms_ssim_against(ms_ssim_reference(x), y)


def ms_ssim_reference(x: np.ndarray) -> list[LocalStatistics]:
    """The local statistics of a reference plane at each MS-SSIM scale, finest first."""
    pyramid = [local_statistics(x)]
    for _ in MS_SSIM_WEIGHTS[1:]:
        x = _decimate(x)
        pyramid.append(local_statistics(x))
    return pyramid


def ms_ssim_against(x: list[LocalStatistics], y: np.ndarray) -> float:
    """MS-SSIM of a reference (its :func:`ms_ssim_reference`) and a float32 plane on the 8-bit scale."""
    value = 1.0
    last = len(MS_SSIM_WEIGHTS) - 1
    for scale, (weight, reference) in enumerate(zip(MS_SSIM_WEIGHTS, x)):
        # A negative mean (anti-correlated planes) would have no real power: it counts as 0.
        luminance, contrast, structure = (max(float(np.mean(t, dtype=np.float64)), 0.0)
                                          for t in ssim_terms(reference, y))
        value *= contrast**weight * structure**weight * (luminance**weight if scale == last else 1.0)
        if scale < last:
            y = _decimate(y)
    return value
