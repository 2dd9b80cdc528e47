"""A differentiable model of a block-transform intra codec: the teacher the QS model is trained inside.

What it models, on the luma plane (8-bit code values, sides a multiple of 16):

- 8x8 orthonormal DCT-II blocks (the transform of a block-based codec, flat scaling list);
- a quantisation step per 16x16 block: ``step_k = base_step * 2 ** (dQP_k / 6)``, the QP -> step law of
  HEVC/VVC (``base_step = 2 ** ((QP - 4) / 6)``), where dQP_k is what vqa-rt's runtime would send to the
  encoder for the QS map (:func:`block_steps`, the formulas of ``vqa_rt.runtime.qpmaps.conversion``);
- DC prediction from the left block (the cheapest intra prediction), so flat areas cost little;
- rate: each coefficient's bits under a Laplacian whose scale is the mean magnitude of that frequency
  over the 3x3 neighbouring blocks (an adaptive context model), with additive uniform noise as the
  quantiser's relaxation (Balle et al.);
- distortion: the reconstruction with real rounding, gradients passed straight through
  (``c + step * stop_grad(round(c / step) - c / step)``), so the error still scales with each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

TRANSFORM = 8
BLOCK = 16  # one quantisation step per 16x16 block, the QS model's output grid
R_LAMBDA_BETA = -1.367  # as vqa_rt.runtime.qpmaps.conversion
_LUMA_709 = (0.2126, 0.7152, 0.0722)
_MIN_PROBABILITY = 1e-9


def qp_step(qp: Tensor | float) -> Tensor:
    """HEVC/VVC quantisation step of a QP, in 8-bit code values: ``2 ** ((QP - 4) / 6)``."""
    return torch.as_tensor(2.0) ** ((torch.as_tensor(qp, dtype=torch.float32) - 4.0) / 6.0)


def luma(rgb: Tensor) -> Tensor:
    """(N, 1, H, W) BT.709 limited-range luma in 8-bit code values from (N, 3, H, W) RGB in [0, 1]."""
    weights = torch.tensor(_LUMA_709, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return 16.0 + 219.0 * (rgb * weights).sum(dim=1, keepdim=True)


def block_steps(qs: Tensor, base_step: Tensor, grid: int = 64, slope: float = 1.0, max_delta: float = 4.0,
                beta: float = R_LAMBDA_BETA) -> Tensor:
    """Quantisation step per 16x16 block, (N, 1, H/16, W/16), for the QS map as the runtime converts it.

    As ``vqa_rt.runtime.qpmaps.conversion``: r_k = (1/QS_k) / mean(1/QS), dQP_k = 3 beta s log2 r_k, averaged
    over ``grid`` x ``grid`` cells, clipped to +-max_delta (not rounded: kept continuous for the gradient);
    then ``step = base_step * 2 ** (dQP / 6)``. ``base_step`` is (N, 1, 1, 1).
    """
    inverse = 1.0 / qs
    ratio = inverse / inverse.mean(dim=(-2, -1), keepdim=True)
    delta = 3.0 * beta * slope * torch.log2(ratio)
    factor = grid // BLOCK
    if factor > 1:
        cells = F.avg_pool2d(delta, factor, ceil_mode=True)
        delta = F.interpolate(cells, scale_factor=factor, mode="nearest")[..., :qs.shape[-2], :qs.shape[-1]]
    return base_step * 2.0 ** (torch.clamp(delta, -max_delta, max_delta) / 6.0)


def _dct_matrix(size: int) -> Tensor:
    index = torch.arange(size, dtype=torch.float64)
    basis = torch.cos(math.pi * (2 * index[None, :] + 1) * index[:, None] / (2 * size)) * math.sqrt(2.0 / size)
    basis[0] /= math.sqrt(2.0)
    return basis.float()


_DCT = _dct_matrix(TRANSFORM)


def _blocks(plane: Tensor) -> Tensor:
    """(N, 1, H, W) -> (N, H/8, W/8, 8, 8) non-overlapping blocks."""
    n, _, h, w = plane.shape
    return plane.reshape(n, h // TRANSFORM, TRANSFORM, w // TRANSFORM, TRANSFORM).permute(0, 1, 3, 2, 4)


def _unblocks(blocks: Tensor) -> Tensor:
    n, rows, cols = blocks.shape[:3]
    return blocks.permute(0, 1, 3, 2, 4).reshape(n, 1, rows * TRANSFORM, cols * TRANSFORM)


def _laplace_bits(value: Tensor, scale: Tensor) -> Tensor:
    """-log2 P(value) of an integer-bin Laplacian(0, scale), evaluated at (noisy) ``value``."""
    upper, lower = value + 0.5, value - 0.5

    def cdf(x: Tensor) -> Tensor:
        return 0.5 + 0.5 * torch.sign(x) * (1.0 - torch.exp(-x.abs() / scale))

    probability = torch.clamp(cdf(upper) - cdf(lower), min=_MIN_PROBABILITY)
    return -torch.log2(probability)


@dataclass
class Coded:
    """One pass of the codec: the reconstruction (8-bit code values) and bits per pixel per image."""

    reconstruction: Tensor
    bpp: Tensor


def code(plane: Tensor, step_blocks: Tensor, generator: torch.Generator | None = None) -> Coded:
    """Code luma ``plane`` (N, 1, H, W) with one step per 16x16 block, ``step_blocks`` (N, 1, H/16, W/16)."""
    coefficients = _DCT @ _blocks(plane) @ _DCT.T
    dc = coefficients[..., 0, 0]
    predicted_dc = F.pad(dc[..., :-1], (1, 0), value=128.0 * TRANSFORM)
    residual = coefficients.clone()
    residual[..., 0, 0] = dc - predicted_dc.detach()
    step = F.interpolate(step_blocks, scale_factor=BLOCK // TRANSFORM, mode="nearest")[:, 0, :, :, None, None]
    normalised = residual / step
    rounding = torch.round(normalised) - normalised
    reconstructed = residual + step * rounding.detach()
    reconstructed[..., 0, 0] = reconstructed[..., 0, 0] + predicted_dc.detach()
    reconstruction = _unblocks(_DCT.T @ reconstructed @ _DCT)
    noise = torch.rand(normalised.shape, generator=generator, device=plane.device) - 0.5
    magnitude = residual.detach().abs()
    n, rows, cols = magnitude.shape[:3]
    context = F.avg_pool2d(magnitude.permute(0, 3, 4, 1, 2).reshape(n, -1, rows, cols), 3, 1, 1,
                           count_include_pad=False)
    context = context.reshape(n, TRANSFORM, TRANSFORM, rows, cols).permute(0, 3, 4, 1, 2)
    bits = _laplace_bits(normalised + noise, torch.clamp(context, min=0.5) / step)
    pixels = plane.shape[-2] * plane.shape[-1]
    return Coded(reconstruction, bits.sum(dim=(1, 2, 3, 4)) / pixels)
