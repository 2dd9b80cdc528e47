"""An :class:`Evaluation` as a terminal table, a CSV (one row per method) and JSON (everything)."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Any

from vqa_rt.runtime.evaluation.protocol import CRITERIA, Evaluation

_HEADS = ("PLCC", "SROCC", "KROCC", "RMSE")


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def render_table(evaluation: Evaluation) -> str:
    """The methods side by side: criteria averaged over groups, then over all rows; then what was left out."""
    width = max(len("method"), *(len(m.method) for m in evaluation.methods))
    cells = " ".join(f"{head:>7}" for head in _HEADS)
    lines = [
        f"{evaluation.rows} rows, MOS from {evaluation.mos_column!r}, "
        f"{evaluation.mapping} mapping fitted per method over all rows",
        f"{'':<{width}} {'':>7}  {'mean over ' + repr(evaluation.group_by) + ' groups':<31} | all rows",
        f"{'method':<{width}} {'groups':>7}  {cells} | {cells}",
    ]
    notes = []
    for m in evaluation.methods:
        per_group = " ".join(f"{_number(m.per_group[c]):>7}" for c in CRITERIA)
        overall = " ".join(f"{_number(m.overall[c]):>7}" for c in CRITERIA)
        lines.append(f"{m.method:<{width}} {f'{m.groups_used}/{len(m.groups)}':>7}  {per_group} | {overall}")
        notes += [f"{m.method}: group {g.name!r} left out ({g.left_out})" for g in m.groups if g.left_out]
        if m.decreasing:
            notes.append(f"{m.method}: the fitted mapping decreases (higher raw scores predict lower MOS)")
        if m.overall_left_out:
            notes.append(f"{m.method}: no criteria over all rows ({m.overall_left_out})")
    if evaluation.left_out:
        notes.append(f"rows left out ({len(evaluation.left_out)}): " + "; ".join(evaluation.left_out))
    return "\n".join(lines + notes) + "\n"


def render_csv(evaluation: Evaluation) -> str:
    """One row per method: mapping, group counts, the averaged and the all-rows criteria."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "mapping", "mapping_params", "rows", "groups_used", "groups",
                     *CRITERIA, *(f"all_{c}" for c in CRITERIA)])
    for m in evaluation.methods:
        params = " ".join(f"{p:.10g}" for p in m.mapping.params)
        values = [m.per_group[c] for c in CRITERIA] + [m.overall[c] for c in CRITERIA]
        writer.writerow([m.method, m.mapping.kind, params, evaluation.rows, m.groups_used, len(m.groups),
                         *("" if v is None else f"{v:.6f}" for v in values)])
    return buffer.getvalue()


def to_json(evaluation: Evaluation) -> dict[str, Any]:
    """Everything, per group included."""
    return {
        **{k: v for k, v in asdict(evaluation).items() if k != "methods"},
        "criteria": list(CRITERIA),
        "methods": [
            {
                "method": m.method,
                "mapping": asdict(m.mapping),
                "decreasing": m.decreasing,
                "groups_used": m.groups_used,
                "per_group_mean": m.per_group,
                "overall": m.overall,
                "overall_left_out": m.overall_left_out,
                "groups": [asdict(g) for g in m.groups],
            }
            for m in evaluation.methods
        ],
    }
