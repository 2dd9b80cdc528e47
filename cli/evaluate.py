"""``vqa-rt eval``: PLCC/SROCC/KROCC/RMSE of score columns against MOS, per group and overall."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Literal

import typer


def _require(module: str) -> None:
    from vqa_rt.errors import BackendUnavailableError

    try:
        importlib.import_module(module)
    except ImportError:
        raise BackendUnavailableError(f"vqa-rt eval needs {module}: pip install 'vqa-rt[eval]'") from None


def evaluate(
    scores: Path = typer.Argument(..., help="CSV with one row per distorted video (e.g. from score-batch)."),
    metric_column: list[str] = typer.Option(
        ..., "--metric-column", "-m", help="Column of one method's scores; repeat to compare methods."),
    mos_column: str = typer.Option("mos", help="Column of the subjective scores (MOS)."),
    mos_csv: Path | None = typer.Option(None, help="Take MOS from this CSV, joined on --join-on."),
    join_on: str = typer.Option("distorted", help="Column naming the video in both CSVs (with --mos-csv)."),
    group_by: str = typer.Option("reference", help="Column grouping the rows: criteria per group, then averaged."),
    mapping: Literal["linear", "logistic4", "logistic5", "none"] = typer.Option(
        "linear", help="Raw score -> MOS mapping, fitted once per method over all rows."),
    csv: Path | None = typer.Option(None, help="Write the table as CSV (one row per method)."),
    json_path: Path | None = typer.Option(None, "--json", help="Write everything, per group included, as JSON."),
    plots: Path | None = typer.Option(None, help="Folder for one scatter plot per method (PNG)."),
):
    """Judge score columns against MOS: the AVSVQA protocol (per reference, then averaged) and over all rows."""
    from vqa_rt.runtime.evaluation.data import load_eval_data
    from vqa_rt.runtime.evaluation.protocol import evaluate as run_evaluation
    from vqa_rt.runtime.evaluation.report import render_csv, render_table, to_json
    from vqa_rt.runtime.outputs import check_output_paths, write_atomic

    for module in ("scipy", *(("matplotlib",) if plots else ())):
        _require(module)
    if plots:
        from vqa_rt.runtime.evaluation.plots import check_plot_folder

        check_plot_folder(str(plots), metric_column)
    outputs = [str(p) for p in (csv, json_path) if p]
    check_output_paths(outputs, [str(scores), str(mos_csv) if mos_csv else None])
    data = load_eval_data(str(scores), metric_column, mos_column, group_by,
                          str(mos_csv) if mos_csv else None, join_on)
    evaluation = run_evaluation(data, mapping, mos_column, group_by)
    typer.echo(render_table(evaluation), nl=False)
    if csv:
        write_atomic(str(csv), render_csv(evaluation))
    if json_path:
        write_atomic(str(json_path), json.dumps(to_json(evaluation), indent=2) + "\n")
    if plots:
        from vqa_rt.runtime.evaluation.plots import write_plots

        written = write_plots(evaluation, data, str(plots))
        typer.echo(f"plots: {', '.join(written)}")
