"""Bjøntegaard deltas (``vqa-rt bd-rate``) against hand computations of the two classic definitions."""

import csv

import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator

from vqa_rt.errors import InputError
from vqa_rt.runtime.evaluation.bdrate import bd_deltas, db_scale

pytest.importorskip("bjontegaard")

ANCHOR = {"bitrate": [1000.0, 640.0, 390.0, 230.0], "psnr_y": [40.1, 37.2, 34.0, 30.9],
          "ms_ssim_y": [0.991, 0.982, 0.963, 0.931]}
TEST = {"bitrate": [930.0, 600.0, 370.0, 221.0], "psnr_y": [40.0, 37.3, 34.2, 31.0],
        "ms_ssim_y": [0.992, 0.984, 0.966, 0.935]}


def write(path, curves: dict, groups=("a",)) -> str:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "qp", *curves])
        for group in groups:
            for i, qp in enumerate((22, 27, 32, 37)):
                writer.writerow([group, qp, *(values[i] for values in curves.values())])
    return str(path)


def overlap(x1, x2):
    return max(min(x1), min(x2)), min(max(x1), max(x2))


def hand_cubic(anchor_x, anchor_y, test_x, test_y):
    """VCEG-M33: a cubic polynomial through each curve, the mean difference over the overlap of x."""
    low, high = overlap(anchor_x, test_x)
    integrals = [np.polyval(np.polyint(np.polyfit(x, y, 3)), high) - np.polyval(np.polyint(np.polyfit(x, y, 3)), low)
                 for x, y in ((anchor_x, anchor_y), (test_x, test_y))]
    return (integrals[1] - integrals[0]) / (high - low)


def hand_pchip(anchor_x, anchor_y, test_x, test_y):
    low, high = overlap(anchor_x, test_x)
    integrals = []
    for x, y in ((anchor_x, anchor_y), (test_x, test_y)):
        order = np.argsort(x)
        integrals.append(PchipInterpolator(np.asarray(x)[order], np.asarray(y)[order]).integrate(low, high))
    return (integrals[1] - integrals[0]) / (high - low)


@pytest.mark.parametrize("method, hand", [("cubic", hand_cubic), ("pchip", hand_pchip)])
def test_deltas_equal_a_hand_computation(tmp_path, method, hand):
    rows = bd_deltas(write(tmp_path / "a.csv", ANCHOR), write(tmp_path / "t.csv", TEST), group="image",
                     method=method)
    by_metric = {row.metric: row for row in rows}
    assert list(by_metric) == ["psnr_y", "ms_ssim_y", "ms_ssim_y (dB)"]  # qp is a setting, not quality
    for metric, scale in (("psnr_y", np.asarray), ("ms_ssim_y", np.asarray), ("ms_ssim_y (dB)", db_scale)):
        column = metric.split(" ")[0]
        qa, qt = scale(np.array(ANCHOR[column])), scale(np.array(TEST[column]))
        la, lt = np.log10(ANCHOR["bitrate"]), np.log10(TEST["bitrate"])
        expected_rate = (10 ** hand(qa, la, qt, lt) - 1) * 100
        expected_quality = hand(la, qa, lt, qt)
        assert by_metric[metric].bd_rate_percent == pytest.approx(expected_rate, abs=1e-6)
        assert by_metric[metric].bd_quality == pytest.approx(expected_quality, abs=1e-9)
        assert by_metric[metric].points == 4
    assert by_metric["psnr_y"].bd_rate_percent < 0 < by_metric["psnr_y"].bd_quality


@pytest.mark.parametrize("method", ["pchip", "cubic", "akima"])
def test_the_same_quality_at_nine_tenths_of_the_rate_is_minus_ten_percent(tmp_path, method):
    faster = dict(ANCHOR, bitrate=[0.9 * r for r in ANCHOR["bitrate"]])
    rows = bd_deltas(write(tmp_path / "a.csv", ANCHOR), write(tmp_path / "t.csv", faster), method=method,
                     metrics=["psnr_y"])
    assert [row.group for row in rows] == ["mean"] and rows[0].bd_rate_percent == pytest.approx(-10.0, abs=1e-9)


def test_groups_are_computed_alone_then_averaged(tmp_path):
    anchor = write(tmp_path / "a.csv", ANCHOR, groups=("x", "y"))
    shifted = dict(TEST, psnr_y=[v + 0.5 for v in TEST["psnr_y"]])
    with open(tmp_path / "t.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "qp", *TEST])
        for group, curves in (("x", TEST), ("y", shifted)):
            for i, qp in enumerate((22, 27, 32, 37)):
                writer.writerow([group, qp, *(values[i] for values in curves.values())])
    rows = bd_deltas(anchor, str(tmp_path / "t.csv"), group="image", metrics=["psnr_y"])
    x, y, mean = rows
    assert (x.group, y.group, mean.group) == ("x", "y", "mean") and y.bd_rate_percent < x.bd_rate_percent
    assert mean.bd_rate_percent == pytest.approx((x.bd_rate_percent + y.bd_rate_percent) / 2)
    assert mean.note == "mean of 2 groups"


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(psnr_y=[40.1, 37.2, 37.5, 30.9]), "must rise strictly with bitrate"),
    (lambda c: c.update(bitrate=[1000.0, 640.0, -1.0, 230.0]), "bitrate must be positive"),
    (lambda c: c.update(ms_ssim_y=[1.0, 0.98, 0.96, 0.93]), "values >= 1, no dB scale"),
    (lambda c: c.pop("psnr_y"), "no column 'psnr_y'"),
])
def test_curves_bjontegaard_cannot_use_are_refused(tmp_path, change, message):
    broken = {k: list(v) for k, v in TEST.items()}
    change(broken)
    with pytest.raises(InputError, match=message):
        bd_deltas(write(tmp_path / "a.csv", ANCHOR), write(tmp_path / "t.csv", broken),
                  metrics=["psnr_y", "ms_ssim_y"])


def test_cubic_needs_four_points_and_groups_must_match(tmp_path):
    three = {k: v[:3] for k, v in ANCHOR.items()}
    path = tmp_path / "three.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(three))
        writer.writerows(zip(*three.values()))
    with pytest.raises(InputError, match="cubic needs at least 4 rate points, got 3"):
        bd_deltas(str(path), str(path), method="cubic")
    with pytest.raises(InputError, match="groups in only one of the files: b"):
        bd_deltas(write(tmp_path / "a.csv", ANCHOR), write(tmp_path / "t.csv", TEST, groups=("a", "b")),
                  group="image")
