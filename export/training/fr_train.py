"""Training the FR model on VMAF-labelled clips (``vqa-rt train fr``): VMAF distilled onto the DCR scale.

The teacher is libvmaf's ``vmaf_v0.6.1`` per frame (:mod:`.fr_data`), mapped onto the 7-level DCR scale by
:func:`vmaf_to_dcr`: VMAF 100 -> 5 ("imperceptible"), VMAF 0 -> 1 ("very annoying"), linear between. A VMAF
teacher cannot express "better than the reference" (DCR 6 and 7), so a model distilled from it never predicts
them until it is fine-tuned on subjective scores that do.

Frames go in exactly as ``vqa-rt score`` feeds them: YUV -> RGB (BT.709, limited range) by the runtime's own
conversion, normalised with the model's mean and std; the previous frame of the first frame is itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vqa_rt.errors import InputError
from vqa_rt.export.models.fr import DCR_MAX, DCR_MIN, IMAGENET_MEAN, IMAGENET_STD, FRConfig, FRModel
from vqa_rt.export.training.loop import TrainingRun
from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb
from vqa_rt.runtime.frames.video import Frame

COMPACT = FRConfig(trunk_widths=(16, 32, 64, 128), fusion_channels=32, head_hidden=64)


def vmaf_to_dcr(vmaf: np.ndarray | float) -> np.ndarray:
    """VMAF (0-100) -> DCR (1-5): ``1 + 4 * VMAF / 100``, VMAF clipped to [0, 100] first."""
    return 1.0 + 4.0 * np.clip(np.asarray(vmaf, np.float64), 0.0, 100.0) / 100.0


@dataclass(frozen=True)
class FRTrainOptions:
    """Everything that decides an FR training run (recorded beside the weights)."""

    steps: int = 6000
    batch: int = 8
    learning_rate: float = 1e-3  # fine-tuning: 1e-4
    seed: int = 0
    validate_every: int = 500
    checkpoint_every: int = 50


@dataclass
class Clip:
    """One distorted clip: its reference's name, the frames a sample is made of, and a DCR target per sample."""

    reference: str
    samples: list[tuple[Frame, Frame, Frame, Frame]]  # (ref, dist, ref_prev, dist_prev)
    targets: np.ndarray

    @property
    def teacher(self) -> float:
        return float(np.mean(self.targets))


def _frames_of_planes(planes: np.ndarray, width: int, height: int) -> list[Frame]:
    luma, chroma = width * height, (width // 2) * (height // 2)
    return [Frame(i, p[:luma].reshape(height, width), p[luma:luma + chroma].reshape(height // 2, width // 2),
                  p[luma + chroma:].reshape(height // 2, width // 2), 8) for i, p in enumerate(planes)]


def _samples(reference: list[Frame], distorted: list[Frame], picks: list[int]) -> list[tuple[Frame, ...]]:
    return [(reference[t], distorted[t], reference[max(t - 1, 0)], distorted[max(t - 1, 0)]) for t in picks]


def labelled_clips(folder: str) -> list[Clip]:
    """The clips of ``folder/labels.jsonl`` (:mod:`.fr_data`), every frame a sample, VMAF mapped to DCR."""
    with open(os.path.join(folder, "labels.jsonl")) as handle:
        rows = [json.loads(line) for line in handle]
    frames: dict[str, list[Frame]] = {}
    clips = []
    for row in rows:
        for key in ("reference_path", "distorted_path"):
            if row[key] not in frames:
                planes = np.fromfile(os.path.join(folder, row[key]), np.uint8).reshape(row["frames"], -1)
                frames[row[key]] = _frames_of_planes(planes, row["width"], row["height"])
        samples = _samples(frames[row["reference_path"]], frames[row["distorted_path"]], list(range(row["frames"])))
        clips.append(Clip(row["reference"], samples, vmaf_to_dcr(row["vmaf"])))
    return clips


def manifest_clips(path: str, mos_column: str, samples_per_clip: int) -> list[Clip]:
    """The rows of a ``score-batch`` manifest with a MOS column on the DCR scale (1-7): ``samples_per_clip``
    frames spread evenly over each video (and their predecessors), the row's MOS the target of each."""
    from vqa_rt.runtime.pipeline.manifest import read_manifest

    manifest = read_manifest(path)
    if mos_column not in manifest.columns:
        raise InputError(f"{path}: no column {mos_column!r} (columns: {', '.join(manifest.columns)})")
    clips = []
    for row in manifest.rows:
        try:
            mos = float(row.values[mos_column])
        except ValueError:
            mos = float("nan")
        if not DCR_MIN <= mos <= DCR_MAX:
            raise InputError(f"{path}: {row.key}: {mos_column} {row.values[mos_column]!r} is not a DCR score "
                             f"({DCR_MIN:g}..{DCR_MAX:g})")
        with row.reference.open() as reference, row.distorted.open() as distorted:
            ref_frames, dist_frames = list(reference), list(distorted)
        count = min(len(ref_frames), len(dist_frames))
        if count == 0:
            raise InputError(f"{path}: {row.key}: no frames")
        picks = sorted({int(i) for i in np.linspace(0, count - 1, min(samples_per_clip, count))})
        keep = sorted(set(picks) | {max(t - 1, 0) for t in picks})
        ref_kept = {t: ref_frames[t] for t in keep}
        dist_kept = {t: dist_frames[t] for t in keep}
        clips.append(Clip(row.values["reference"], _samples(ref_kept, dist_kept, picks), np.full(len(picks), mos)))
    return clips


class Batches:
    """Model inputs made from clips exactly as ``vqa-rt score`` makes them (at ``size``, if given)."""

    def __init__(self, clips: list[Clip], size: tuple[int, int] | None = None):
        self.clips, self.size = clips, size

    def _input(self, frame: Frame) -> np.ndarray:
        return normalize(yuv_to_rgb(frame, size=self.size), IMAGENET_MEAN, IMAGENET_STD)

    def inputs(self, picks: list[tuple[int, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(ref, dist, ref_prev, dist_prev) batches and the DCR targets of (clip, sample) ``picks``."""
        frames = [self.clips[c].samples[i] for c, i in picks]
        slots = [torch.from_numpy(np.stack([self._input(f[slot]) for f in frames])) for slot in range(4)]
        targets = torch.tensor([self.clips[c].targets[i] for c, i in picks], dtype=torch.float32)
        return slots, targets

    def sample(self, rng: np.random.Generator, size: int) -> list[tuple[int, int]]:
        clips = rng.integers(len(self.clips), size=size)
        return [(int(c), int(rng.integers(len(self.clips[c].samples)))) for c in clips]


def clip_scores(model: FRModel, batches: Batches, sample_step: int = 3, batch: int = 16) -> np.ndarray:
    """Each clip's mean predicted DCR over every ``sample_step``-th sample."""
    picks = [(c, i) for c, clip in enumerate(batches.clips) for i in range(0, len(clip.samples), sample_step)]
    scores = np.zeros(len(picks))
    with torch.no_grad():
        for start in range(0, len(picks), batch):
            inputs, _ = batches.inputs(picks[start:start + batch])
            scores[start:start + batch] = model(*inputs)[0].numpy()
    per_clip: dict[int, list[float]] = {}
    for (clip, _), score in zip(picks, scores):
        per_clip.setdefault(clip, []).append(score)
    return np.array([np.mean(per_clip[c]) for c in range(len(batches.clips))])


def agreement(model: FRModel, batches: Batches) -> dict[str, float]:
    """Mean per-reference SROCC and PLCC of clip scores against the clips' targets, and the overall RMSE (DCR);
    references with fewer than 3 clips count only in the RMSE."""
    from scipy import stats

    predicted = clip_scores(model, batches)
    teacher = np.array([clip.teacher for clip in batches.clips])
    srocc, plcc = [], []
    for reference in sorted({clip.reference for clip in batches.clips}):
        mine = [i for i, clip in enumerate(batches.clips) if clip.reference == reference]
        if len(mine) >= 3 and np.ptp(teacher[mine]) > 0 and np.ptp(predicted[mine]) > 0:
            srocc.append(stats.spearmanr(predicted[mine], teacher[mine]).statistic)
            plcc.append(stats.pearsonr(predicted[mine], teacher[mine]).statistic)
    return {"srocc": float(np.mean(srocc)) if srocc else float("nan"),
            "plcc": float(np.mean(plcc)) if plcc else float("nan"),
            "rmse": float(np.sqrt(np.mean((predicted - teacher) ** 2)))}


def train(options: FRTrainOptions, training: Batches, validation: Batches, workdir: str, model: FRModel,
          log: Callable[[str], None] = print, minutes: float | None = None,
          stop_at: int | None = None) -> dict:
    """Train ``model`` on ``training`` (validating on ``validation``), resuming from ``workdir``; the record."""
    run = TrainingRun(model, options, workdir, log)

    def loss_of_batch() -> torch.Tensor:
        inputs, targets = training.inputs(training.sample(run.rng, options.batch))
        return torch.nn.functional.smooth_l1_loss(model(*inputs)[0], targets, beta=0.25)

    record = run.fit(loss_of_batch, lambda: agreement(model, validation), minutes, stop_at)
    record["config"] = model.config.to_dict()
    return record


def distillation_data(data: str) -> tuple[Batches, Batches]:
    """Training and validation batches of the VMAF-labelled clips in ``data/train`` and ``data/validation``."""
    return Batches(labelled_clips(os.path.join(data, "train"))), Batches(labelled_clips(os.path.join(data,
                                                                                                     "validation")))


def seeded_model(config: FRConfig, seed: int) -> FRModel:
    """A freshly initialised model (the start of a distillation)."""
    torch.manual_seed(seed)
    return FRModel(config)


def starting_model(weights: str) -> FRModel:
    """The model a fine-tuning starts from: ``shipped`` or a checkpoint file (its config comes with it)."""
    from vqa_rt.export.models.checkpoint import load_checkpoint, load_shipped
    from vqa_rt.export.models.spec import get_spec

    spec = get_spec("fr")
    loaded = load_shipped(spec) if weights == "shipped" else load_checkpoint(spec, weights)
    return loaded.model
