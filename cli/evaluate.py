"""``vqa-rt eval`` (PLCC/SROCC/KROCC/RMSE of score columns against MOS) and ``vqa-rt bd-rate`` (Bjøntegaard
deltas between two rate-quality curves)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Literal

import typer


def _require(module: str, command: str = "eval") -> None:
    from vqa_rt.errors import BackendUnavailableError

    try:
        importlib.import_module(module)
    except ImportError:
        raise BackendUnavailableError(f"vqa-rt {command} needs {module}: pip install 'vqa-rt[eval]'") from None


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


def bd_rate(
    anchor: Path = typer.Argument(..., help="CSV of the anchor's rate points (e.g. the encoder without a map)."),
    test: Path = typer.Argument(..., help="CSV of the tested rate points, same columns."),
    rate: str = typer.Option("bitrate", help="Rate column (bits, bytes or kbps: any positive unit used in both)."),
    quality: list[str] | None = typer.Option(
        None, "--quality", "-q", help="Quality column (higher is better); repeat. Default: every numeric column "
        "of both files but the rate, the group and qp/crf/base_qp/preset."),
    group: str | None = typer.Option(None, help="Column naming the image or sequence: deltas per group, then "
                                     "their mean."),
    method: str = typer.Option("pchip", help="Interpolation: pchip (JVET CTC), cubic (VCEG-M33) or akima."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Also write the rows (.csv or .json)."),
):
    """Bjøntegaard deltas: BD-rate (%) at equal quality and BD-quality at equal rate, per metric (and group)."""
    from vqa_rt.runtime.evaluation.bdrate import bd_deltas, deltas_csv, render_deltas
    from vqa_rt.runtime.outputs import check_output_paths, write_atomic

    _require("bjontegaard", "bd-rate")
    if output is not None and output.suffix.lower() not in (".csv", ".json"):
        raise typer.BadParameter(f"{output}: the output is .csv or .json", param_hint="--output")
    check_output_paths([str(output)] if output else [], [str(anchor), str(test)])
    deltas = bd_deltas(str(anchor), str(test), rate, quality, group, method)
    typer.echo(render_deltas(deltas), nl=False)
    if output is not None:
        rows = [delta.to_dict() for delta in deltas]
        write_atomic(str(output), json.dumps(rows, indent=2) + "\n" if output.suffix.lower() == ".json"
                     else deltas_csv(rows))
