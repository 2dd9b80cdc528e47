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
    from vqa_rt.export.training.loop import save_weights
    from vqa_rt.export.training.qpmap_train import TrainOptions, train
    from vqa_rt.runtime.outputs import check_output_paths

    check_output_paths([str(output)], [])
    options = TrainOptions(steps=steps, batch=batch, seed=seed, grid=grid, max_delta=max_delta)
    model, record = train(options, str(workdir), log=lambda line: typer.echo(line, err=True), minutes=minutes)
    if record["step"] < options.steps:
        typer.echo(f"checkpointed at step {record['step']} of {options.steps} in {workdir}; rerun to continue")
        raise typer.Exit(3)
    save_weights(model, "qpmap", record, str(output))
    typer.echo(f"wrote {output} (step {record['step']}, {record['seconds'] / 60:.1f} min; validation R-D cost "
               f"change {record['history'][-1]['validation']:+.4f}, activity map {record['activity_validation']:+.4f})")


@app.command("fr")
def train_fr(
    output: Path = typer.Option(..., "--output", "-o", help="Weights to write (.safetensors) when training ends."),
    data: Path = typer.Option(Path("fr-training-data"), help="Labelled clips; made here first where missing."),
    workdir: Path = typer.Option(Path("fr-training"), help="Checkpoints; a rerun resumes from here."),
    steps: int = typer.Option(6000, min=1, help="Optimiser steps in all (the learning-rate schedule's length)."),
    batch: int = typer.Option(8, min=1, help="Frame pairs per step."),
    seed: int = typer.Option(0, help="Seed of the weights, the clips and the batches."),
    synthetic: int = typer.Option(24, min=0, help="Dead-leaves reference clips added to the training photographs."),
    minutes: float | None = typer.Option(None, min=0.0, help="Stop (checkpointed) after this long; rerun to resume."),
):
    """Distil VMAF into the FR model (compact width) on clips made here from the sample photographs."""
    from vqa_rt.export.training import fr_data
    from vqa_rt.export.training.fr_train import FRTrainOptions, train
    from vqa_rt.export.training.loop import save_weights
    from vqa_rt.runtime.outputs import check_output_paths
    from vqa_rt.runtime.scorers.baselines.vmaf import find_vmaf_ffmpeg

    check_output_paths([str(output)], [])
    ffmpeg = find_vmaf_ffmpeg()
    for split, count in (("train", synthetic), ("validation", 0)):
        fr_data.build(str(data / split), ffmpeg, split, synthetic=count, seed=seed,
                      log=lambda line: typer.echo(line, err=True))
    options = FRTrainOptions(steps=steps, batch=batch, seed=seed)
    model, record = train(options, str(data), str(workdir), log=lambda line: typer.echo(line, err=True),
                          minutes=minutes)
    if record["step"] < options.steps:
        typer.echo(f"checkpointed at step {record['step']} of {options.steps} in {workdir}; rerun to continue")
        raise typer.Exit(3)
    save_weights(model, "fr", record, str(output))
    last = record["history"][-1]
    typer.echo(f"wrote {output} (step {record['step']}, {record['seconds'] / 60:.1f} min; validation SROCC "
               f"{last['srocc']:.3f}, PLCC {last['plcc']:.3f} against VMAF)")
