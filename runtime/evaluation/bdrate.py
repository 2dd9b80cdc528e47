"""Bjøntegaard deltas between two rate-quality curves: CSV files in, one row per metric (and group) out.

Each file has one row per rate point: a rate column (bits, bytes or kbps: any positive unit, the same in
both files), one or more quality columns (higher is better) and optionally a group column (image or
sequence): deltas are computed per group, then averaged over the groups (as the JVET/VCEG common test
conditions average over sequences). The integration is the ``bjontegaard`` package's:

- ``pchip`` (default): piecewise cubic Hermite interpolation, as in the JVET CTC spreadsheets;
- ``cubic``: one cubic polynomial through the points, Bjøntegaard's original VCEG-M33;
- ``akima``: Akima splines.

BD-rate is the mean rate difference at equal quality, in percent (negative: the test needs fewer bits);
BD-quality the mean quality difference at equal rate, in the metric's unit. A quality column whose name
contains ``ssim`` is also reported on the dB scale, ``-10 log10(1 - value)``, where equal steps are
closer to equal visual steps near 1 (the row is named ``<column> (dB)``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from vqa_rt.errors import InputError
from vqa_rt.runtime.tables import Table, read_table

METHODS = ("pchip", "cubic", "akima")
SETTING_COLUMNS = {"qp", "crf", "base_qp", "preset"}  # encoder settings, never quality
MIN_POINTS = {"pchip": 2, "cubic": 4, "akima": 2}
ALL_GROUPS = "mean"


def db_scale(values: np.ndarray) -> np.ndarray:
    """SSIM-type scores in [0, 1) -> dB: ``-10 log10(1 - value)``."""
    return -10.0 * np.log10(1.0 - values)


@dataclass(frozen=True)
class Delta:
    """The Bjøntegaard deltas of one metric for one group (``mean``: averaged over the groups)."""

    group: str
    metric: str
    bd_rate_percent: float
    bd_quality: float
    points: int
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"group": self.group, "metric": self.metric, "bd_rate_percent": self.bd_rate_percent,
                "bd_quality": self.bd_quality, "points": self.points, "note": self.note}


def _number(table: Table, row: int, column: str) -> float:
    text = table.rows[row][column]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"{table.path}: line {table.lines[row]}: {column} is {text!r}, not a finite number")
    return value


def quality_columns(anchor: Table, test: Table, rate: str, group: str | None) -> list[str]:
    """Default metrics: the columns of both files, in the anchor's order, that hold numbers in every row and are
    not the rate, the group or an encoder setting (qp, crf, base_qp, preset)."""
    def numeric(table: Table, column: str) -> bool:
        try:
            return all(math.isfinite(float(row[column])) for row in table.rows)
        except ValueError:
            return False

    skip = {rate, group} | SETTING_COLUMNS
    return [c for c in anchor.columns if c in test.columns and c.lower() not in skip and c not in skip
            and numeric(anchor, c) and numeric(test, c)]


def _curves(table: Table, rate: str, metrics: list[str], group: str | None) -> dict[str, dict[str, np.ndarray]]:
    """Per group: the rates and each metric's values, sorted by rate."""
    table.require(rate, *metrics, *([group] if group else []))
    if not table.rows:
        raise InputError(f"{table.path}: has no rate points")
    rows_by_group: dict[str, list[int]] = {}
    for index, row in enumerate(table.rows):
        rows_by_group.setdefault(row[group] if group else ALL_GROUPS, []).append(index)
    curves = {}
    for name, rows in rows_by_group.items():
        rates = np.array([_number(table, i, rate) for i in rows])
        if np.any(rates <= 0):
            raise InputError(f"{table.path}: {rate} must be positive (group {name!r})")
        order = np.argsort(rates, kind="stable")
        curve = {rate: rates[order]}
        for metric in metrics:
            curve[metric] = np.array([_number(table, i, metric) for i in rows])[order]
        curves[name] = curve
    return curves


def _one_delta(anchor: dict[str, np.ndarray], test: dict[str, np.ndarray], rate: str, metric: str, method: str,
               group: str, label: str, where: tuple[str, str]) -> Delta:
    import bjontegaard

    points = min(len(anchor[rate]), len(test[rate]))
    if points < MIN_POINTS[method]:
        raise InputError(f"group {group!r}: {method} needs at least {MIN_POINTS[method]} rate points, "
                         f"got {points}")
    for curve, path in zip((anchor, test), where):
        values, rates = curve[metric], curve[rate]
        if np.any(np.diff(rates) <= 0) or np.any(np.diff(values) <= 0):
            raise InputError(f"{path}: group {group!r}: {label} must rise strictly with {rate} for Bjøntegaard "
                             f"deltas (rates {rates.tolist()}, {label} {values.tolist()})")
    args = (anchor[rate], anchor[metric], test[rate], test[metric])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rate_delta = float(bjontegaard.bd_rate(*args, method=method, require_matching_points=False))
        quality_delta = float(bjontegaard.bd_psnr(*args, method=method, require_matching_points=False))
    note = "; ".join(sorted({str(w.message) for w in caught}))
    return Delta(group, label, rate_delta, quality_delta, points, note)


def bd_deltas(anchor_csv: str, test_csv: str, rate: str = "bitrate", metrics: list[str] | None = None,
              group: str | None = None, method: str = "pchip") -> list[Delta]:
    """Bjøntegaard deltas of ``test_csv`` against ``anchor_csv``: per group and metric, then each metric's
    mean over the groups (when there is more than one)."""
    if method not in METHODS:
        raise InputError(f"unknown interpolation {method!r} (known: {', '.join(METHODS)})")
    anchor_table, test_table = read_table(anchor_csv), read_table(test_csv)
    for table in (anchor_table, test_table):
        table.require(rate, *([group] if group else []))
    metrics = list(metrics) if metrics else quality_columns(anchor_table, test_table, rate, group)
    if not metrics:
        raise InputError(f"{anchor_csv} and {test_csv} share no numeric quality column (give --quality)")
    anchor, test = (_curves(t, rate, metrics, group) for t in (anchor_table, test_table))
    missing = sorted(set(anchor) ^ set(test))
    if missing:
        raise InputError(f"groups in only one of the files: {', '.join(missing[:8])}")
    deltas = []
    for name in anchor:
        for metric in metrics:
            scales = [(metric, None)] + ([(f"{metric} (dB)", db_scale)] if "ssim" in metric.lower() else [])
            for label, scale in scales:
                a, t = dict(anchor[name]), dict(test[name])
                if scale is not None:
                    if np.any(a[metric] >= 1) or np.any(t[metric] >= 1):
                        raise InputError(f"group {name!r}: {metric} has values >= 1, no dB scale")
                    a[metric], t[metric] = scale(a[metric]), scale(t[metric])
                deltas.append(_one_delta(a, t, rate, metric, method, name, label, (anchor_csv, test_csv)))
    if len(anchor) > 1:
        labels = list(dict.fromkeys(d.metric for d in deltas))
        for label in labels:
            mine = [d for d in deltas if d.metric == label]
            deltas.append(Delta(ALL_GROUPS, label, float(np.mean([d.bd_rate_percent for d in mine])),
                                float(np.mean([d.bd_quality for d in mine])), sum(d.points for d in mine),
                                f"mean of {len(mine)} groups"))
    return deltas


def render_deltas(deltas: list[Delta]) -> str:
    """A plain-text table, one line per group and metric."""
    width = max(len(d.metric) for d in deltas)
    lines = [f"{'group':<12} {'metric':<{width}} {'BD-rate':>9} {'BD-quality':>11}  points"]
    for d in deltas:
        lines.append(f"{d.group:<12} {d.metric:<{width}} {d.bd_rate_percent:>+8.2f}% {d.bd_quality:>+11.4f}  "
                     f"{d.points}" + (f"  ({d.note})" if d.note else ""))
    return "\n".join(lines) + "\n"


def deltas_csv(rows: list[dict[str, object]]) -> str:
    """The rows as CSV text with a header."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
