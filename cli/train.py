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
    data: Path = typer.Option(Path("fr-training-data"), help="Distillation: the labelled clips, made here first "
                              "where missing."),
    manifest: Path | None = typer.Option(None, help="Fine-tuning instead: a score-batch manifest with a MOS column "
                                         "(DCR scale, 1-7)."),
    mos_column: str = typer.Option("mos", help="The manifest's MOS column."),
    validation_manifest: Path | None = typer.Option(None, help="Fine-tuning: rows to validate on (default: the "
                                                    "training rows, reported as the fit)."),
    start: str = typer.Option("shipped", "--from", help="Fine-tuning: the weights to start from (.safetensors, "
                              ".pt, or shipped)."),
    analysis_size: str = typer.Option("320x192", help="Fine-tuning: frames are scaled to this size, as "
                                      "'vqa-rt score --analysis-size' will."),
    samples_per_clip: int = typer.Option(12, min=1, help="Fine-tuning: frames taken from each video."),
    workdir: Path = typer.Option(Path("fr-training"), help="Checkpoints; a rerun resumes from here."),
    steps: int | None = typer.Option(None, min=1, help="Optimiser steps in all (default: 6000 distilling, "
                                     "1000 fine-tuning)."),
    batch: int = typer.Option(8, min=1, help="Frame pairs per step."),
    learning_rate: float | None = typer.Option(None, min=0.0, help="Adam's rate (default: 1e-3 distilling, "
                                               "1e-4 fine-tuning)."),
    seed: int = typer.Option(0, help="Seed of the weights, the clips and the batches."),
    synthetic: int = typer.Option(24, min=0, help="Distillation: dead-leaves reference clips added to the "
                                  "training photographs."),
    minutes: float | None = typer.Option(None, min=0.0, help="Stop (checkpointed) after this long; rerun to resume."),
):
    """Distil VMAF into the FR model (compact width) on clips made here, or fine-tune it on your MOS."""
    from vqa_rt.cli.options import parse_size
    from vqa_rt.export.training import fr_data, fr_train
    from vqa_rt.export.training.loop import save_weights
    from vqa_rt.runtime.outputs import check_output_paths

    def log(line: str) -> None:
        typer.echo(line, err=True)

    inputs = [str(p) for p in (manifest, validation_manifest) if p is not None]
    check_output_paths([str(output)], inputs + ([start] if start != "shipped" else []))
    tuning = manifest is not None
    options = fr_train.FRTrainOptions(steps=steps or (1000 if tuning else 6000), batch=batch, seed=seed,
                                      learning_rate=learning_rate or (1e-4 if tuning else 1e-3))
    if tuning:
        model = fr_train.starting_model(start)
        size = parse_size(analysis_size)
        training = fr_train.Batches(fr_train.manifest_clips(str(manifest), mos_column, samples_per_clip), size)
        validation = training if validation_manifest is None else fr_train.Batches(
            fr_train.manifest_clips(str(validation_manifest), mos_column, samples_per_clip), size)
    else:
        from vqa_rt.runtime.scorers.baselines.vmaf import find_vmaf_ffmpeg

        ffmpeg = find_vmaf_ffmpeg()
        for split, count in (("train", synthetic), ("validation", 0)):
            fr_data.build(str(data / split), ffmpeg, split, synthetic=count, seed=seed, log=log)
        model = fr_train.seeded_model(fr_train.COMPACT, seed)
        training, validation = fr_train.distillation_data(str(data))
    record = fr_train.train(options, training, validation, str(workdir), model, log=log, minutes=minutes)
    if record["step"] < options.steps:
        typer.echo(f"checkpointed at step {record['step']} of {options.steps} in {workdir}; rerun to continue")
        raise typer.Exit(3)
    record["data"] = ({"manifest": str(manifest), "mos_column": mos_column, "from": start} if tuning else
                      {"teacher": fr_data.VMAF_MODEL, "mapping": "DCR = 1 + 4 * VMAF / 100"})
    save_weights(model, "fr", record, str(output))
    last = record["history"][-1]
    typer.echo(f"wrote {output} (step {record['step']}, {record['seconds'] / 60:.1f} min; validation SROCC "
               f"{last['srocc']:.3f}, PLCC {last['plcc']:.3f}, RMSE {last['rmse']:.3f})")
