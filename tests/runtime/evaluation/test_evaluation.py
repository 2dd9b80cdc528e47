"""The evaluation protocol: criteria against SciPy and hand-checked values, grouping,
mappings, loading scores and MOS, and the rendered outputs."""

import csv
import io
import json

import numpy as np
import pytest
from scipy import stats

from vqa_rt.errors import EvaluationError, InputError
from vqa_rt.runtime.evaluation.data import EvalData, load_eval_data
from vqa_rt.runtime.evaluation.mapping import Mapping, fit_mapping
from vqa_rt.runtime.evaluation.plots import write_plots
from vqa_rt.runtime.evaluation.protocol import criteria, evaluate, evaluate_method
from vqa_rt.runtime.evaluation.report import render_csv, render_table, to_json


def test_criteria_on_a_hand_checked_case():
    # Deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5): PLCC = 4 / 5; ranks are the values;
    # 5 concordant pairs and 1 discordant of 6: tau = 4 / 6; errors (0, -1, 1, 0): RMSE = sqrt(1 / 2).
    result = criteria(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4]))
    assert result == pytest.approx({"plcc": 0.8, "srocc": 0.8, "krocc": 2 / 3, "rmse": np.sqrt(0.5)})


def test_criteria_with_ties_equal_scipy_and_tau_b():
    predicted, mos = np.array([1.0, 1, 2, 3]), np.array([1.0, 2, 2, 3])
    result = criteria(predicted, mos)
    # Tau-b: 4 concordant, 0 discordant, one tied pair in each: 4 / sqrt((6 - 1) * (6 - 1)).
    assert result["krocc"] == pytest.approx(0.8)
    assert result["srocc"] == pytest.approx(stats.spearmanr(predicted, mos).statistic)
    assert result["plcc"] == pytest.approx(stats.pearsonr(predicted, mos).statistic)


def _data(groups: dict[str, tuple[list[float], list[float]]]) -> EvalData:
    scores, mos, names = [], [], []
    for name, (x, y) in groups.items():
        scores += x
        mos += y
        names += [name] * len(x)
    return EvalData(np.array(mos), {"m": np.array(scores)}, names, [])


GROUPS = {
    "a": ([30.0, 34, 38, 41, 44], [2.0, 3.1, 3.9, 5.2, 5.9]),
    "b": ([28.0, 33, 35, 40], [1.5, 2.2, 3.8, 3.7]),
    "pair": ([31.0, 39], [2.0, 4.0]),
    "flat": ([36.0, 36, 36], [2.0, 3.0, 4.0]),
    "same-mos": ([29.0, 32, 37], [3.0, 3.0, 3.0]),
}


def test_per_group_criteria_after_one_global_mapping_equal_scipy():
    data = _data(GROUPS)
    result = evaluate(data, "linear").methods[0]
    line = stats.linregress(data.scores["m"], data.mos)
    assert result.mapping.params == pytest.approx((line.slope, line.intercept))
    expected = []
    for name in ("a", "b"):
        x, y = (np.array(v) for v in GROUPS[name])
        predicted = line.slope * x + line.intercept
        expected.append([stats.pearsonr(predicted, y).statistic, stats.spearmanr(predicted, y).statistic,
                         stats.kendalltau(predicted, y).statistic, np.sqrt(np.mean((predicted - y) ** 2))])
    assert list(result.per_group.values()) == pytest.approx(np.mean(expected, axis=0).tolist())
    reasons = {g.name: g.left_out for g in result.groups}
    assert reasons == {"a": None, "b": None, "pair": "2 rows, fewer than 3", "flat": "constant scores",
                       "same-mos": "constant MOS"}
    assert result.groups_used == 2
    predicted_all = line.slope * data.scores["m"] + line.intercept
    assert result.overall["krocc"] == pytest.approx(stats.kendalltau(predicted_all, data.mos).statistic)


def test_a_method_where_lower_is_better_is_mapped_to_positive_correlation():
    x, y = np.array([5.0, 4, 3, 1]), np.array([1.0, 2, 3, 4])
    result = evaluate_method("distortion", x, y, ["g"] * 4, "linear")
    assert result.mapping.params[0] < 0 and result.decreasing
    assert result.per_group["plcc"] > 0.95 and result.per_group["srocc"] == pytest.approx(1.0)
    assert "distortion: the fitted mapping decreases" in render_table(evaluate(EvalData(y, {"distortion": x}, ["g"] * 4, [])))
    raw = evaluate_method("distortion", x, y, ["g"] * 4, "none")
    assert not raw.decreasing
    assert raw.per_group["srocc"] == pytest.approx(-1.0)
    assert raw.per_group["rmse"] == pytest.approx(np.sqrt(np.mean((x - y) ** 2)))


@pytest.mark.parametrize("kind, params", [
    ("logistic4", (6.5, 1.2, 35.0, 3.0)),
    ("logistic5", (5.0, 0.4, 35.0, 0.02, 3.5)),
])
def test_logistic_mappings_recover_the_curve_they_were_made_with(kind, params):
    x = np.linspace(22, 48, 40)
    y = Mapping(kind, params)(x)
    fitted = fit_mapping(kind, x, y)
    np.testing.assert_allclose(fitted(x), y, atol=1e-4)


def test_mappings_that_cannot_be_fitted_are_errors():
    with pytest.raises(EvaluationError, match="every score is 3"):
        fit_mapping("linear", np.array([3.0, 3, 3]), np.array([1.0, 2, 3]))
    with pytest.raises(EvaluationError, match=r"logistic5 mapping \(5 parameters\) to 4 rows"):
        fit_mapping("logistic5", np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 4]))
    with pytest.raises(EvaluationError, match="unknown mapping 'cubic'"):
        fit_mapping("cubic", np.array([1.0, 2]), np.array([1.0, 2]))
    with pytest.raises(EvaluationError, match="2 usable rows, fewer than 3"):
        evaluate(_data({"g": ([1.0, 2], [1.0, 2])}))


def test_mos_is_joined_on_normalised_paths_and_left_out_rows_are_said(tmp_path, write_csv):
    scores = write_csv(tmp_path / "scores.csv", [
        {"reference": "r1", "distorted": "./clips/a.yuv", "psnr": "30.5", "vmaf": "70"},
        {"reference": "r1", "distorted": "clips/b.yuv", "psnr": "35", "vmaf": ""},
        {"reference": "r1", "distorted": "clips/c.yuv", "psnr": "40", "vmaf": "90"},
        {"reference": "r1", "distorted": "clips/unrated.yuv", "psnr": "41", "vmaf": "91"},
    ])
    mos = write_csv(tmp_path / "mos.csv", [
        {"distorted": "clips/a.yuv", "mos": "2.5"}, {"distorted": "clips/b.yuv", "mos": "3"},
        {"distorted": "clips//c.yuv", "mos": "4.5"},
    ])
    data = load_eval_data(scores, ["psnr", "vmaf"], "mos", "reference", mos_csv=mos)
    assert data.mos.tolist() == [2.5, 4.5] and data.scores["psnr"].tolist() == [30.5, 40.0]
    assert data.left_out == ["line 3: no number for vmaf", f"line 5: no row in {mos} for distorted 'clips/unrated.yuv'"]
    with pytest.raises(InputError, match=r"scores.csv: no column 'ssim' \(columns: reference, distorted, psnr, vmaf\)"):
        load_eval_data(scores, ["psnr", "ssim"], "mos", "reference", mos_csv=mos)
    with pytest.raises(InputError, match="no column 'mos'"):
        load_eval_data(scores, ["psnr"])
    with pytest.raises(InputError, match="nope.csv: no such file"):
        load_eval_data(str(tmp_path / "nope.csv"), ["psnr"])


def test_table_csv_json_and_plots(tmp_path):
    data = _data(GROUPS)
    data.scores["other"] = data.scores["m"] ** 0.5
    evaluation = evaluate(data, "logistic4", "mos", "reference")
    table = render_table(evaluation)
    assert "logistic4 mapping" in table and "mean over 'reference' groups" in table
    assert "m: group 'pair' left out (2 rows, fewer than 3)" in table
    rows = list(csv.DictReader(io.StringIO(render_csv(evaluation))))
    assert [r["method"] for r in rows] == ["m", "other"] and rows[0]["groups_used"] == "2"
    assert float(rows[0]["plcc"]) == pytest.approx(evaluation.methods[0].per_group["plcc"], abs=1e-6)
    document = json.loads(json.dumps(to_json(evaluation)))
    assert document["methods"][0]["groups"][2] == {"name": "pair", "rows": 2, "criteria": None,
                                                  "left_out": "2 rows, fewer than 3"}
    paths = write_plots(evaluation, data, str(tmp_path / "plots"))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["m.png", "other.png"]
    for path in paths:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
