"""One scatter plot per method: raw objective score against MOS, with the fitted mapping."""

from __future__ import annotations

import os
import re

import numpy as np

from vqa_rt.errors import InputError
from vqa_rt.runtime.evaluation.data import EvalData
from vqa_rt.runtime.evaluation.protocol import Evaluation, MethodResult

_MAX_LEGEND_GROUPS = 10  # beyond this, points are not coloured by group


def _file_name(method: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", method) + ".png"


def _title(result: MethodResult, group_by: str) -> str:
    def value(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    return (f"{result.method}: PLCC {value(result.per_group['plcc'])}, SROCC {value(result.per_group['srocc'])} "
            f"per {group_by}; all rows {value(result.overall['plcc'])} / {value(result.overall['srocc'])}")


def plot_method(result: MethodResult, data: EvalData, evaluation: Evaluation, path: str) -> None:
    """Write ``path`` (PNG): the method's rows, coloured by group when there are few, and its mapping."""
    from matplotlib.figure import Figure

    scores = data.scores[result.method]
    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    axes = figure.subplots()
    names = list(dict.fromkeys(data.groups))
    coloured = len(names) <= _MAX_LEGEND_GROUPS
    if coloured:
        groups = np.asarray(data.groups)
        for name in names:
            axes.scatter(scores[groups == name], data.mos[groups == name], s=18, label=name or "(none)")
    else:
        axes.scatter(scores, data.mos, s=12)
    if result.mapping.kind != "none":
        grid = np.linspace(scores.min(), scores.max(), 200)
        axes.plot(grid, result.mapping(grid), color="black", linewidth=1, label=f"{result.mapping.kind} fit")
    if coloured:
        axes.legend(title=evaluation.group_by, fontsize="small")
    axes.set_xlabel(f"{result.method} (raw score)")
    axes.set_ylabel(evaluation.mos_column)
    axes.set_title(_title(result, evaluation.group_by), fontsize="small")
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=100)


def check_plot_folder(directory: str, methods: list[str]) -> None:
    """Refuse, before any work, a plot folder that cannot be made (an existing file, or a file on its path) or
    methods whose plots would share a file name."""
    path = os.path.abspath(directory)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{directory}: exists and is not a folder (--plots names a folder for one PNG per method)")
    ancestor = path
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise InputError(f"{directory}: the plot folder cannot be made: {ancestor} is a file")
    names: dict[str, str] = {}
    for method in methods:
        other = names.setdefault(_file_name(method), method)
        if other != method:
            raise InputError(f"methods {other!r} and {method!r} would both be plotted to {_file_name(method)}")


def write_plots(evaluation: Evaluation, data: EvalData, directory: str) -> list[str]:
    """A PNG per method in ``directory`` (created if needed); returns their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for result in evaluation.methods:
        path = os.path.join(directory, _file_name(result.method))
        plot_method(result, data, evaluation, path)
        paths.append(path)
    return paths
