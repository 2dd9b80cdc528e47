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

from vqa_rt.export.models.fr import IMAGENET_MEAN, IMAGENET_STD, FRConfig, FRModel
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
    learning_rate: float = 1e-3
    seed: int = 0
    validate_every: int = 500
    checkpoint_every: int = 50


class LabelledClips:
    """The clips of a ``labels.jsonl`` in memory (uint8 planes) and the model inputs made from them."""

    def __init__(self, folder: str):
        with open(os.path.join(folder, "labels.jsonl")) as handle:
            self.rows = [json.loads(line) for line in handle]
        self.planes: dict[str, np.ndarray] = {}
        for row in self.rows:
            for key in ("reference_path", "distorted_path"):
                if row[key] not in self.planes:
                    self.planes[row[key]] = np.fromfile(os.path.join(folder, row[key]), np.uint8).reshape(
                        row["frames"], -1)
        self.targets = [vmaf_to_dcr(row["vmaf"]) for row in self.rows]

    def _input(self, path: str, row: dict, index: int) -> np.ndarray:
        width, height = row["width"], row["height"]
        data = self.planes[path][index]
        luma, chroma = width * height, (width // 2) * (height // 2)
        frame = Frame(index, data[:luma].reshape(height, width), data[luma:luma + chroma].reshape(height // 2, -1),
                      data[luma + chroma:].reshape(height // 2, -1), 8)
        return normalize(yuv_to_rgb(frame), IMAGENET_MEAN, IMAGENET_STD)

    def inputs(self, picks: list[tuple[int, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(ref, dist, ref_prev, dist_prev) batches and the DCR targets of (row, frame) ``picks``."""
        slots: list[list[np.ndarray]] = [[], [], [], []]
        for row_index, t in picks:
            row = self.rows[row_index]
            for slot, (key, index) in enumerate((("reference_path", t), ("distorted_path", t),
                                                 ("reference_path", max(t - 1, 0)), ("distorted_path", max(t - 1, 0)))):
                slots[slot].append(self._input(row[key], row, index))
        targets = torch.tensor([self.targets[r][t] for r, t in picks], dtype=torch.float32)
        return [torch.from_numpy(np.stack(s)) for s in slots], targets

    def sample(self, rng: np.random.Generator, size: int) -> list[tuple[int, int]]:
        rows = rng.integers(len(self.rows), size=size)
        return [(int(r), int(rng.integers(self.rows[r]["frames"]))) for r in rows]


def clip_scores(model: FRModel, clips: LabelledClips, frame_step: int = 3, batch: int = 16) -> np.ndarray:
    """Each clip's mean predicted DCR over every ``frame_step``-th frame."""
    picks = [(r, t) for r, row in enumerate(clips.rows) for t in range(0, row["frames"], frame_step)]
    scores = np.zeros(len(picks))
    with torch.no_grad():
        for start in range(0, len(picks), batch):
            inputs, _ = clips.inputs(picks[start:start + batch])
            scores[start:start + batch] = model(*inputs)[0].numpy()
    per_clip: dict[int, list[float]] = {}
    for (row, _), score in zip(picks, scores):
        per_clip.setdefault(row, []).append(score)
    return np.array([np.mean(per_clip[r]) for r in range(len(clips.rows))])


def agreement(model: FRModel, clips: LabelledClips) -> dict[str, float]:
    """Mean per-reference SROCC and PLCC of clip scores against clip-mean VMAF, and the overall RMSE (DCR)."""
    from scipy import stats

    predicted = clip_scores(model, clips)
    teacher = np.array([float(np.mean(t)) for t in clips.targets])
    references = sorted({row["reference"] for row in clips.rows})
    srocc, plcc = [], []
    for reference in references:
        mine = [i for i, row in enumerate(clips.rows) if row["reference"] == reference]
        srocc.append(stats.spearmanr(predicted[mine], teacher[mine]).statistic)
        plcc.append(stats.pearsonr(predicted[mine], teacher[mine]).statistic)
    return {"srocc": float(np.mean(srocc)), "plcc": float(np.mean(plcc)),
            "rmse": float(np.sqrt(np.mean((predicted - teacher) ** 2)))}


def train(options: FRTrainOptions, data: str, workdir: str, config: FRConfig = COMPACT,
          log: Callable[[str], None] = print, minutes: float | None = None,
          stop_at: int | None = None) -> tuple[FRModel, dict]:
    """Train on ``data/train`` (validating on ``data/validation``), resuming from ``workdir``."""
    torch.manual_seed(options.seed)
    model = FRModel(config)
    run = TrainingRun(model, options, workdir, log)
    train_clips, validation_clips = LabelledClips(os.path.join(data, "train")), LabelledClips(
        os.path.join(data, "validation"))

    def loss_of_batch() -> torch.Tensor:
        inputs, targets = train_clips.inputs(train_clips.sample(run.rng, options.batch))
        score, spatial, temporal = model(*inputs)
        return torch.nn.functional.smooth_l1_loss(score, targets, beta=0.25)

    record = run.fit(loss_of_batch, lambda: agreement(model, validation_clips), minutes, stop_at)
    record["config"] = config.to_dict()
    return model, record
