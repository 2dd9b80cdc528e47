"""The differentiable block codec the QS model trains inside: its transform, its R-D behaviour, and its QS -> step
conversion against the runtime's (the oracle: what vqa-rt sends to the encoder)."""

import numpy as np
import pytest
import torch

from vqa_rt.export.training import block_codec
from vqa_rt.runtime.qpmaps.conversion import aggregate, delta_qp

pytest.importorskip("pytorch_msssim")


@pytest.fixture(scope="module")
def plane() -> torch.Tensor:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:128, 0:192]
    smooth = 120 + 60 * np.sin(x / 23.0) * np.cos(y / 31.0)
    texture = np.where(x > 96, 25 * rng.standard_normal((128, 192)), 0.0)
    return torch.from_numpy(np.clip(smooth + texture, 16, 235)).float()[None, None]


def test_the_transform_is_orthonormal_so_a_tiny_step_reconstructs_exactly(plane):
    coded = block_codec.code(plane, torch.full((1, 1, 8, 12), 1e-4))
    assert torch.allclose(coded.reconstruction, plane, atol=1e-3)


def test_a_coarser_step_costs_fewer_bits_and_more_error(plane):
    generator = torch.Generator().manual_seed(0)
    results = []
    for qp in (22, 27, 32, 37):
        coded = block_codec.code(plane, block_codec.qp_step(qp).expand(1, 1, 8, 12), generator)
        results.append((float(coded.bpp), float(((coded.reconstruction - plane) ** 2).mean())))
    rates, errors = zip(*results)
    assert all(a > b for a, b in zip(rates, rates[1:])) and all(a < b for a, b in zip(errors, errors[1:]))
    assert 0.05 < rates[-1] < rates[0] < 8.0  # bits per pixel of a plausible intra coder


def test_steps_follow_the_runtime_conversion_of_qs_to_delta_qp():
    qs = torch.from_numpy(np.random.default_rng(1).uniform(0.2, 5.0, (2, 1, 9, 13))).float()
    for grid in (16, 32, 64):
        steps = block_codec.block_steps(qs, torch.ones(2, 1, 1, 1), grid, slope=1.2, max_delta=4.0)
        for image in range(2):
            expected = np.clip(aggregate(delta_qp(qs[image, 0].numpy(), slope=1.2), grid // 16), -4, 4)
            cells = (6 * torch.log2(steps[image, 0])).numpy()[:: grid // 16, :: grid // 16]
            assert np.allclose(cells, expected, atol=1e-4), grid


def test_gradients_reach_the_qs_map(plane):
    qs = torch.ones(1, 1, 8, 12, requires_grad=True)
    coded = block_codec.code(plane, block_codec.block_steps(qs, block_codec.qp_step(32).view(1, 1, 1, 1), 16))
    ((coded.reconstruction - plane) ** 2).mean().add(coded.bpp.sum()).backward()
    assert qs.grad is not None and torch.count_nonzero(qs.grad) > 0 and torch.isfinite(qs.grad).all()
