"""PLCC, SROCC, KROCC and RMSE against MOS, per group and over all rows.

The seed's protocol: each method's raw scores get one mapping to MOS fitted over the
whole set; the four criteria are then computed on the mapped scores within each group
(each reference's distorted versions) and averaged over the groups. The same criteria
over all rows at once are reported beside them. A group with fewer than three rows,
or constant scores or MOS, has no correlation: it is listed with the reason and left
out of the average. Correlations are SciPy's (Pearson, Spearman, Kendall's tau-b).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vqa_rt.errors import EvaluationError
from vqa_rt.runtime.evaluation.data import EvalData
from vqa_rt.runtime.evaluation.mapping import Mapping, fit_mapping

CRITERIA = ("plcc", "srocc", "krocc", "rmse")
MIN_GROUP = 3


def criteria(predicted: np.ndarray, mos: np.ndarray) -> dict[str, float]:
    """The four criteria of predicted MOS against MOS (at least two distinct values in each)."""
    from scipy import stats

    return {
        "plcc": float(stats.pearsonr(predicted, mos).statistic),
        "srocc": float(stats.spearmanr(predicted, mos).statistic),
        "krocc": float(stats.kendalltau(predicted, mos).statistic),
        "rmse": float(np.sqrt(np.mean((predicted - mos) ** 2))),
    }


def unusable(predicted: np.ndarray, mos: np.ndarray) -> str | None:
    """Why the criteria cannot be computed on these rows, or None."""
    if len(mos) < MIN_GROUP:
        return f"{len(mos)} row{'s' if len(mos) != 1 else ''}, fewer than {MIN_GROUP}"
    if np.ptp(predicted) == 0:
        return "constant scores"
    if np.ptp(mos) == 0:
        return "constant MOS"
    return None


@dataclass(frozen=True)
class GroupResult:
    """One group's criteria, or why it has none."""

    name: str
    rows: int
    criteria: dict[str, float] | None
    left_out: str | None


@dataclass(frozen=True)
class MethodResult:
    """One method: its mapping, the criteria averaged over groups, over all rows, and per group.

    ``decreasing``: the mapping predicts lower MOS for higher raw scores (so the
    correlations after mapping are positive although the raw scores fall as MOS rises).
    """

    method: str
    mapping: Mapping
    decreasing: bool
    per_group: dict[str, float | None]
    overall: dict[str, float | None]
    overall_left_out: str | None
    groups: list[GroupResult] = field(repr=False)

    @property
    def groups_used(self) -> int:
        return sum(group.criteria is not None for group in self.groups)


@dataclass(frozen=True)
class Evaluation:
    """Every method judged on the same rows."""

    mos_column: str
    group_by: str
    mapping: str
    rows: int
    left_out: list[str]
    methods: list[MethodResult]


def _mean_criteria(groups: list[GroupResult]) -> dict[str, float | None]:
    used = [group.criteria for group in groups if group.criteria is not None]
    return {name: float(np.mean([c[name] for c in used])) if used else None for name in CRITERIA}


def evaluate_method(method: str, scores: np.ndarray, mos: np.ndarray, groups: list[str],
                    mapping: str = "linear") -> MethodResult:
    """Fit one mapping over all rows, then compute the criteria per group and overall."""
    fitted = fit_mapping(mapping, scores, mos)
    predicted = fitted(scores)
    names = np.asarray(groups)
    results = []
    for name in dict.fromkeys(groups):  # groups in order of first appearance
        rows = names == name
        reason = unusable(predicted[rows], mos[rows])
        values = None if reason else criteria(predicted[rows], mos[rows])
        results.append(GroupResult(name, int(rows.sum()), values, reason))
    overall_reason = unusable(predicted, mos)
    overall = dict.fromkeys(CRITERIA) if overall_reason else criteria(predicted, mos)
    decreasing = bool(fitted(np.max(scores)) < fitted(np.min(scores)))
    return MethodResult(method, fitted, decreasing, _mean_criteria(results), overall, overall_reason, results)


def evaluate(data: EvalData, mapping: str = "linear", mos_column: str = "mos",
             group_by: str = "reference") -> Evaluation:
    """Judge every method in ``data`` with the same mapping kind and grouping."""
    if len(data.mos) < MIN_GROUP:
        detail = f": {'; '.join(data.left_out[:3])}" if data.left_out else ""
        raise EvaluationError(f"{len(data.mos)} usable rows, fewer than {MIN_GROUP}{detail}")
    methods = [evaluate_method(m, scores, data.mos, data.groups, mapping) for m, scores in data.scores.items()]
    return Evaluation(mos_column, group_by, mapping, len(data.mos), data.left_out, methods)
