"""The rows an evaluation uses: MOS, each method's raw scores and each row's group.

Scores come from one CSV (e.g. ``vqa-rt score-batch`` output); MOS from a column of
it or from a second CSV joined on a key column (by default ``distorted``; paths are
compared normalised). A row lacking a number for MOS or any method is left out, and
said so: every method is judged on the same rows.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from vqa_rt.errors import InputError
from vqa_rt.runtime.tables import Table, read_table


@dataclass(frozen=True)
class EvalData:
    """Aligned arrays over the usable rows, and why the other rows were left out."""

    mos: np.ndarray
    scores: dict[str, np.ndarray]  # method -> raw objective scores
    groups: list[str]
    left_out: list[str]  # "line N: reason"


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _mos_by_key(path: str, mos_column: str, join_on: str) -> dict[str, str]:
    table = read_table(path)
    table.require(join_on, mos_column)
    mos: dict[str, str] = {}
    for row, line in zip(table.rows, table.lines):
        key = os.path.normpath(row[join_on])
        if key in mos:
            raise InputError(f"{path}: line {line}: {join_on} {row[join_on]!r} appears twice")
        mos[key] = row[mos_column]
    return mos


def _mos_values(table: Table, mos_column: str, mos_csv: str | None, join_on: str) -> list[str | None]:
    """Each row's MOS text; None when the MOS CSV has no row for it."""
    if mos_csv is None:
        table.require(mos_column)
        return [row[mos_column] for row in table.rows]
    table.require(join_on)
    mos = _mos_by_key(mos_csv, mos_column, join_on)
    return [mos.get(os.path.normpath(row[join_on])) for row in table.rows]


def load_eval_data(scores_csv: str, methods: list[str], mos_column: str = "mos", group_by: str = "reference",
                   mos_csv: str | None = None, join_on: str = "distorted") -> EvalData:
    """Read the scores (and MOS) and keep the rows with a number in every column needed."""
    if not methods:
        raise InputError("no method given: name at least one score column")
    twice = sorted({method for method in methods if methods.count(method) > 1})
    if twice:
        raise InputError(f"score column(s) given more than once: {', '.join(map(repr, twice))} (--metric-column "
                         "names each method once)")
    table = read_table(scores_csv)
    table.require(group_by, *methods)
    mos_texts = _mos_values(table, mos_column, mos_csv, join_on)
    mos, scores, groups, left_out = [], {m: [] for m in methods}, [], []
    for row, line, mos_text in zip(table.rows, table.lines, mos_texts):
        if mos_text is None:
            left_out.append(f"line {line}: no row in {mos_csv} for {join_on} {row[join_on]!r}")
            continue
        values = {column: _number(text) for column, text in ((mos_column, mos_text), *((m, row[m]) for m in methods))}
        missing = [column for column, value in values.items() if value is None]
        if missing:
            left_out.append(f"line {line}: no number for {', '.join(missing)}")
            continue
        mos.append(values[mos_column])
        for method in methods:
            scores[method].append(values[method])
        groups.append(row[group_by])
    return EvalData(np.array(mos), {m: np.array(v) for m, v in scores.items()}, groups, left_out)
