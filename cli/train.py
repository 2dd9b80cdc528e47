"""``vqa-rt train``: train vqa-rt's models here, from data made of what ships in packages (the ``train`` extra)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Train a model (seeded, resumable: rerun the same command to continue).",
                  no_args_is_help=True)


@app.command("qpmap")
def train_qpmap(
    output: Path = typer.Option(..., "--output", "-o", help="Weights to write (.safetensors) when training ends."),
    workdir: Path = typer.Option(Path("qpmap-training"), help="Checkpoints; a rerun resumes from here."),
    steps: int = typer.Option(4000, min=1, help="Optimiser steps in all (the learning-rate schedule's length)."),
    batch: int = typer.Option(8, min=1, help="Crops per step."),
    seed: int = typer.Option(0, help="Seed of the weights, the crops and the codec's noise."),
    grid: int = typer.Option(64, help="Encoder grid the map is averaged to in training (Kvazaar: 64)."),
    max_delta: float = typer.Option(4.0, min=0.0, help="Delta-QP clip, as at run time."),
    minutes: float | None = typer.Option(None, min=0.0, help="Stop (checkpointed) after this long; rerun to resume."),
):
    """Train the QP-map (QS) model inside a differentiable block-transform codec under 1 - MS-SSIM."""
    from vqa_rt.export.training.qpmap_train import TrainOptions, save_weights, train
    from vqa_rt.runtime.outputs import check_output_paths

    check_output_paths([str(output)], [])
    options = TrainOptions(steps=steps, batch=batch, seed=seed, grid=grid, max_delta=max_delta)
    model, record = train(options, str(workdir), log=lambda line: typer.echo(line, err=True), minutes=minutes)
    if record["step"] < options.steps:
        typer.echo(f"checkpointed at step {record['step']} of {options.steps} in {workdir}; rerun to continue")
        raise typer.Exit(3)
    save_weights(model, record, str(output))
    typer.echo(f"wrote {output} (step {record['step']}, {record['seconds'] / 60:.1f} min; validation R-D cost "
               f"change {record['history'][-1]['validation']:+.4f}, activity map {record['activity_validation']:+.4f})")
