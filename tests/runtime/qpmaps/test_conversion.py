"""QS -> delta QP: rate normalisation, sign, clipping, aggregation, legal range; the activity baseline."""

import math

import numpy as np
import pytest

from vqa_rt.errors import InputError
from vqa_rt.runtime.qpmaps.activity import ACTIVITY_FLOOR, activity_qs, block_activity
from vqa_rt.runtime.qpmaps.conversion import (
    R_LAMBDA_BETA,
    QPConversion,
    aggregate,
    bit_ratio,
    delta_qp,
    grid_shape,
    legal_delta,
    quantize,
)


def _qs(rows=5, cols=7, seed=0):
    return np.random.default_rng(seed).uniform(0.2, 5.0, (rows, cols))


def test_bit_ratio_preserves_the_average_rate_and_ignores_scale():
    qs = _qs()
    ratio = bit_ratio(qs)
    assert ratio.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(bit_ratio(7.5 * qs), ratio)
    np.testing.assert_allclose(ratio, (1 / qs) / np.mean(1 / qs))


def test_delta_qp_follows_the_r_lambda_formula():
    qs = np.array([[1.0, 2.0]])  # 1/QS = [1, 0.5], mean 0.75 -> r = [4/3, 2/3]
    expected = [3 * R_LAMBDA_BETA * math.log2(4 / 3), 3 * R_LAMBDA_BETA * math.log2(2 / 3)]
    np.testing.assert_allclose(delta_qp(qs), [expected])
    np.testing.assert_allclose(delta_qp(qs, slope=1.2), [[1.2 * e for e in expected]])


def test_smaller_quantization_step_gets_a_lower_qp():
    qs = _qs()
    delta = delta_qp(qs)
    order = np.argsort(qs.ravel())
    assert np.all(np.diff(delta.ravel()[order]) > 0)  # QP rises with QS
    assert delta.ravel()[order[0]] < 0 < delta.ravel()[order[-1]]
    assert np.all(delta[bit_ratio(qs) > 1] < 0)


def test_uniform_map_gives_zero_deltas():
    assert np.all(QPConversion()(np.full((4, 6), 3.0)) == 0)


def test_quantize_clips_and_rounds_half_to_even():
    values = np.array([-9.0, -4.4, -2.5, -0.5, 0.49, 1.5, 3.6, 12.0])
    assert quantize(values, 4).tolist() == [-4, -4, -2, 0, 0, 2, 4, 4]
    assert quantize(values, 2).tolist() == [-2, -2, -2, 0, 0, 2, 2, 2]
    assert quantize(values, 4).dtype == np.int8


def test_aggregation_averages_cells_and_partial_edge_cells():
    delta = np.arange(15, dtype=float).reshape(3, 5)
    out = aggregate(delta, 2)
    assert out.shape == (2, 3)
    assert out[0, 0] == np.mean([0, 1, 5, 6])
    assert out[0, 2] == np.mean([4, 9])  # right edge: one column of blocks
    assert out[1, 1] == np.mean([12, 13])  # bottom edge: one row of blocks
    assert out[1, 2] == 14
    np.testing.assert_array_equal(aggregate(delta, 1), delta)


def test_aggregation_is_a_log_domain_mean_then_round():
    qs = _qs(8, 8, seed=3)
    coarse = QPConversion(grid=64, max_delta=51)(qs)
    fine = delta_qp(qs)
    expected = [[fine[4 * r:4 * r + 4, 4 * c:4 * c + 4].mean() for c in range(2)] for r in range(2)]
    np.testing.assert_array_equal(coarse, np.rint(expected))


@pytest.mark.parametrize("base, codec, expected", [
    (50, "hevc", [-4, 0, 1]),   # 54 would exceed 51
    (2, "hevc", [-2, 0, 4]),    # -2 would be below 0
    (50, "vvc", [-4, 0, 4]),    # VVC allows up to 63
    (61, "vvc", [-4, 0, 2]),
])
def test_legal_range_clips_the_absolute_qp(base, codec, expected):
    conversion = QPConversion(base_qp=base, codec=codec)
    delta = legal_delta(np.array([-4, 0, 4], np.int8), base, conversion.qp_range)
    assert delta.tolist() == expected
    low, high = conversion.qp_range
    qp = conversion.absolute(delta)
    assert np.all((qp >= low) & (qp <= high)) and qp.tolist() == [base + d for d in expected]


@pytest.mark.parametrize("grid", [16, 32, 64, 128])
def test_conversion_output_shape_and_range(grid):
    qs = _qs(34, 60, seed=grid)  # a 960x544 frame's blocks
    delta = QPConversion(grid=grid)(qs)
    assert delta.shape == grid_shape(960, 544, grid) == (math.ceil(544 / grid), math.ceil(960 / grid))
    assert delta.dtype == np.int8 and np.abs(delta).max() <= 4


@pytest.mark.parametrize("field, value, message", [
    ("beta", 1.367, "must be negative"),
    ("slope", 0.0, "slope must be positive"),
    ("grid", 24, "grid must be one of 16, 32, 64, 128"),
    ("base_qp", 52, "outside the hevc range 0..51"),
    ("max_delta", -1, "max delta QP must be"),
    ("codec", "avc", "unknown codec 'avc'"),
])
def test_invalid_parameters_are_input_errors(field, value, message):
    with pytest.raises(InputError, match=message):
        QPConversion(**{field: value})


def test_activity_is_high_for_texture_and_floored_for_flat_blocks():
    rng = np.random.default_rng(0)
    luma = np.full((32, 48), 128, np.uint8)
    luma[:, 32:] = rng.integers(0, 256, (32, 16))
    activity = block_activity(luma, 8)
    assert activity.shape == (2, 3)
    assert np.all(activity[:, 0] == 0) and np.all(activity[:, 2] > 100)
    qs = activity_qs(luma, 8)
    assert np.all(qs[:, 0] == ACTIVITY_FLOOR ** 0.5)
    delta = QPConversion()(qs)
    assert np.all(delta[:, 0] < 0) and np.all(delta[:, 2] == 4)  # flat: more bits; texture: fewer


def test_activity_is_measured_in_8_bit_units_and_covers_partial_blocks():
    luma8 = np.random.default_rng(1).integers(16, 236, (40, 50)).astype(np.uint8)
    luma10 = luma8.astype(np.uint16) * 4
    np.testing.assert_array_equal(block_activity(luma10, 10), block_activity(luma8, 8))
    assert block_activity(luma8, 8).shape == (3, 4)
