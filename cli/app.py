"""The ``vqa-rt`` command line: thin commands over the library.

Heavy modules (torch, onnxruntime, OpenCV) are imported inside the commands, so
``vqa-rt --help`` stays fast and needs neither torch nor TensorRT.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Literal, Optional

import typer

from vqa_rt.cli.options import ColorRange, Height, PixFmt, Width
from vqa_rt.errors import VqaRtError

app = typer.Typer(
    name="vqa-rt",
    help="Compiled inference for video-quality networks (FR and NR scoring, QP maps, on ONNX Runtime).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

UNTRAINED_WARNING = "note: UNTRAINED weights (seeded random init): scores are not meaningful quality predictions"


class ModelKind(str, Enum):
    fr = "fr"
    nr = "nr"
    qpmap = "qpmap"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


def _parse_size(text: Optional[str]) -> Optional[tuple[int, int]]:
    if text is None:
        return None
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise typer.BadParameter(f"size must be positive, got {text!r}")
    return width, height


CONFIG_HELP = "Config preset (nr: tiny, small) or a JSON file of architecture hyper-parameters."


def _load_config(spec, config: Optional[str]):
    """A named preset of the model kind, or the config in a JSON file."""
    if config is None:
        return None
    if config in spec.presets or not (config.endswith(".json") or os.path.exists(config)):
        return spec.config_from_preset(config)
    try:
        values = json.loads(Path(config).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise VqaRtError(f"{config}: cannot read the config JSON ({exc})") from None
    return spec.config_from_dict(values)


def _load_model(kind: ModelKind, checkpoint: Optional[Path], random_init: Optional[int], config: Optional[str]):
    from vqa_rt.export.models.checkpoint import load_checkpoint, random_init as seeded_model
    from vqa_rt.export.models.spec import get_spec

    if (checkpoint is None) == (random_init is None):
        raise typer.BadParameter("give exactly one of --checkpoint and --random-init")
    spec = get_spec(kind.value)
    model_config = _load_config(spec, config)
    if checkpoint is not None:
        return spec, load_checkpoint(spec, str(checkpoint), model_config)
    return spec, seeded_model(spec, random_init, model_config)


@app.command()
def init(
    kind: ModelKind = typer.Argument(..., help="Model kind."),
    seed: int = typer.Option(0, help="Random seed of the weights."),
    output: Path = typer.Option(..., "--output", "-o", help="Checkpoint file to write (.pt)."),
    config: Optional[str] = typer.Option(None, help=CONFIG_HELP),
):
    """Write a checkpoint with seeded random (UNTRAINED) weights, for demos and tests."""
    from vqa_rt.export.models.checkpoint import save_checkpoint

    _, loaded = _load_model(kind, None, seed, config)
    save_checkpoint(loaded, str(output), kind.value)
    typer.echo(f"wrote {output} ({loaded.source}; untrained)")


@app.command()
def export(
    kind: ModelKind = typer.Argument(..., help="Model kind."),
    output: Path = typer.Option(..., "--output", "-o", help="ONNX file to write."),
    checkpoint: Optional[Path] = typer.Option(
        None, help="PyTorch state_dict file to load (strict); for nr, a Hugging Face LLaVA checkpoint directory."),
    random_init: Optional[int] = typer.Option(None, help="Seed for UNTRAINED random weights instead of a checkpoint."),
    config: Optional[str] = typer.Option(
        None, help=CONFIG_HELP + " With an nr checkpoint directory only its prompt, levels, weights and score range apply."),
    opset: int = typer.Option(22, help="ONNX opset (DeformConv needs 19 or later)."),
    validate: bool = typer.Option(True, help="Validate the ONNX file against PyTorch after export."),
):
    """Export a model to ONNX with dynamic batch/height/width and embedded metadata, then validate it."""
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    spec, loaded = _load_model(kind, checkpoint, random_init, config)
    report = export_onnx(spec, loaded, str(output), opset=opset, validate=validate)
    typer.echo(f"wrote {output} ({spec.kind}, weights: {loaded.source}{', UNTRAINED' if loaded.untrained else ''})")
    if report is not None:
        typer.echo(f"validated against PyTorch: {report.summary()}")


def _terminal_progress(done: int, total: Optional[int]) -> None:
    suffix = f"/{total}" if total else ""
    print(f"\rscored {done}{suffix} frames", end="", file=sys.stderr, flush=True)


@app.command()
def score(
    engine: str = typer.Option(
        ..., help="FR or NR engine (.onnx from 'vqa-rt export fr|nr') or a baseline metric: psnr, ssim, ms-ssim, vmaf."
    ),
    reference: Optional[str] = typer.Option(
        None, "--reference", "-r", help="Reference video: raw YUV, Y4M, or - for stdin (not for NR engines)."),
    distorted: str = typer.Option(..., "--distorted", "-d", help="Distorted video: raw YUV, Y4M, or - for stdin."),
    width: Width = None,
    height: Height = None,
    pix_fmt: PixFmt = None,
    fps: Optional[float] = typer.Option(None, help="Frame rate of raw YUV (Y4M headers carry it); for --sample-fps."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSON results (libvmaf-shaped)."),
    csv: Optional[Path] = typer.Option(None, help="CSV of per-frame scores."),
    matrix: Literal["bt709", "bt601"] = typer.Option("bt709", help="YUV->RGB matrix."),
    color_range: ColorRange = None,
    analysis_size: Optional[str] = typer.Option(None, help="Resize frames to WIDTHxHEIGHT before inference."),
    frame_skip: int = typer.Option(0, help="Skip this many frames at the start."),
    frame_stride: Optional[int] = typer.Option(
        None, help="Score every Nth frame (default: every frame; NR models: 1 frame per second)."),
    sample_fps: Optional[float] = typer.Option(None, help="Score this many frames per second of video."),
    sample_frames: Optional[int] = typer.Option(None, help="Score this many frames, evenly spaced."),
    max_frames: Optional[int] = typer.Option(None, help="Score at most this many frames."),
    batch_size: int = typer.Option(1, help="Frames per inference call."),
    device: Device = typer.Option(Device.cpu, help="ONNX Runtime device."),
    threads: int = typer.Option(0, help="Inference threads (0: one per core)."),
):
    """Score a distorted video against its reference (FR model or baseline), or alone (NR model): per-frame and pooled scores."""
    from vqa_rt.runtime.pipeline.score import ScoreOptions, score as run_score
    from vqa_rt.runtime.frames.sources import VideoInput

    if batch_size < 1:
        raise typer.BadParameter("--batch-size must be at least 1")
    options = ScoreOptions(
        matrix=matrix,
        color_range=color_range,
        analysis_size=_parse_size(analysis_size),
        frame_skip=frame_skip,
        frame_stride=frame_stride,
        max_frames=max_frames,
        batch_size=batch_size,
        sample_fps=sample_fps,
        sample_frames=sample_frames,
    )
    try:
        result = run_score(
            engine,
            None if reference is None else VideoInput(reference, width, height, pix_fmt, fps),
            VideoInput(distorted, width, height, pix_fmt, fps),
            options,
            output_json=str(output) if output else None,
            output_csv=str(csv) if csv else None,
            device=device.value,
            threads=threads,
            progress=_terminal_progress if sys.stderr.isatty() else None,
        )
    finally:
        if sys.stderr.isatty():
            print(file=sys.stderr)
    if result["model"]["untrained"]:
        typer.echo(UNTRAINED_WARNING, err=True)
    model = result["model"]
    values = result["pooled_metrics"][model["metric"]]
    pooled = {name: "n/a" if value is None else f"{value:.4f}" for name, value in values.items()}
    scale = model["score_scale"]
    typer.echo(
        f"{len(result['frames'])} frames, {model['label']} ({scale['name']} {scale['min']:g}..{scale['max']:g}): "
        f"mean {pooled['mean']}, harmonic mean {pooled['harmonic_mean']}, "
        f"min {pooled['min']}, p5 {pooled['p5']}, max {pooled['max']}"
        + (" [untrained]" if result["model"]["untrained"] else "")
    )
    if output is None and csv is None:
        typer.echo("(no --output/--csv given: per-frame scores not saved)", err=True)


@app.command("make-clip")
def make_clip(
    reference: Path = typer.Option(..., "--reference", "-r", help="Reference raw YUV file to write."),
    distorted: Path = typer.Option(..., "--distorted", "-d", help="Distorted raw YUV file to write."),
    width: int = typer.Option(320, "--width", "-w"),
    height: int = typer.Option(240, "--height", "-h"),
    frames: int = typer.Option(24, help="Number of frames."),
    ten_bit: bool = typer.Option(False, "--10bit", help="Write yuv420p10le instead of yuv420p."),
    quality: int = typer.Option(30, help="JPEG quality of the distortion (1..100; lower is worse)."),
    seed: int = typer.Option(0),
):
    """Make a synthetic test clip: a moving textured scene and a JPEG-degraded copy (raw YUV)."""
    from vqa_rt.runtime.frames.synthetic import make_test_clip

    fmt = make_test_clip(
        str(reference), str(distorted), width, height, frames, seed=seed, bit_depth=10 if ten_bit else 8, quality=quality
    )
    typer.echo(f"wrote {reference} and {distorted}: {frames} frames {width}x{height} {fmt.pix_fmt}")


from vqa_rt.cli.qpmap import qpmap_command  # noqa: E402 (registered after the built-in commands)

app.command("qpmap")(qpmap_command)

from vqa_rt.cli.batch import score_batch  # noqa: E402
from vqa_rt.cli.evaluate import evaluate  # noqa: E402

app.command("score-batch")(score_batch)
app.command("eval")(evaluate)

from vqa_rt.cli.quantize import quantize_command  # noqa: E402

app.command("quantize")(quantize_command)

from vqa_rt.cli.gpu import build_engine_command, doctor_command  # noqa: E402

app.command("build-engine")(build_engine_command)
app.command("doctor")(doctor_command)

from vqa_rt.cli.run import run_command  # noqa: E402

app.command("run")(run_command)

from vqa_rt.cli.serve import serve_command  # noqa: E402

app.command("serve")(serve_command)

from vqa_rt.cli.inspect import inspect_command  # noqa: E402

app.command("inspect")(inspect_command)


def main() -> None:
    """Entry point: library errors become one line on stderr and exit status 2."""
    try:
        app()
    except VqaRtError as exc:
        typer.echo(f"vqa-rt: error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        typer.echo(f"vqa-rt: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("vqa-rt: interrupted (results scored so far were kept in the output files)", err=True)
        sys.exit(130)
