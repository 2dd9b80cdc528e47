"""Training the QS model inside the differentiable block codec (``vqa-rt train qpmap``).

Per step, for a batch of crops each at a random base QP in [22, 37]:

- the model's QS map goes through the runtime's QS -> dQP conversion (slope 1, averaged over the encoder's grid,
  clipped to +-max_delta), and the block codec (:mod:`.block_codec`) codes the crop's luma with those steps;
- loss = mean over the batch of ``(D + lambda R) / (D0 + lambda R0) - 1``, D = 1 - MS-SSIM (luma, 8-bit scale),
  R = bits per pixel; D0, R0: the same crop coded with one step for every block (no map); lambda: the slope of
  that uniform coder's own R-D curve at the crop's QP (from a pass 3 QP coarser). Below zero is a better
  R-D trade-off than no map at the operating point, which is what a BD-rate gain is made of.

The mean of 1/QS is normalised away by the conversion, so the rate stays comparable across images.
State is checkpointed to the work folder (:mod:`.loop`); rerunning the same command resumes from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from pytorch_msssim import ms_ssim

from vqa_rt.export.models.qpmap import QPMapConfig, QPMapModel
from vqa_rt.export.training import block_codec
from vqa_rt.export.training.loop import TrainingRun
from vqa_rt.export.training.sample_images import SPLITS, dead_leaves, load
from vqa_rt.runtime.qpmaps.activity import activity_qs

QP_RANGE = (22.0, 37.0)
VALIDATION_QPS = (22, 27, 32, 37)
LAMBDA_PROBE_QP = 3.0


@dataclass(frozen=True)
class TrainOptions:
    """Everything that decides a training run (recorded beside the weights)."""

    steps: int = 3000
    batch: int = 8
    crop: int = 256
    learning_rate: float = 5e-4
    max_delta: float = 4.0
    grid: int = 64  # Kvazaar applies one delta per 64x64 CTU
    synthetic_images: int = 48
    seed: int = 0
    validate_every: int = 250
    checkpoint_every: int = 100


def _tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


class CropSampler:
    """Random crops of the training pool with a random downscale (0.5-1), flips and transposes."""

    def __init__(self, pool: list[np.ndarray], crop: int, rng: np.random.Generator):
        self.pool, self.crop, self.rng = pool, crop, rng

    def _one(self) -> np.ndarray:
        image = self.pool[self.rng.integers(len(self.pool))]
        fit = self.crop / min(image.shape[:2])
        scale = self.rng.uniform(max(0.5, fit), max(1.0, fit))
        if scale != 1.0:
            size = (max(self.crop, round(image.shape[1] * scale)), max(self.crop, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        top = self.rng.integers(image.shape[0] - self.crop + 1)
        left = self.rng.integers(image.shape[1] - self.crop + 1)
        crop = image[top:top + self.crop, left:left + self.crop]
        if self.rng.random() < 0.5:
            crop = crop[:, ::-1]
        if self.rng.random() < 0.5:
            crop = crop.transpose(1, 0, 2)
        return np.ascontiguousarray(crop)

    def batch(self, size: int) -> torch.Tensor:
        return _tensor([self._one() for _ in range(size)])


def training_pool(options: TrainOptions) -> list[np.ndarray]:
    """The training photographs plus seeded dead-leaves images."""
    rng = np.random.default_rng(options.seed + 1)
    return [load(name) for name in SPLITS["train"]] + [dead_leaves(options.crop * 2, rng)
                                                        for _ in range(options.synthetic_images)]


def validation_set(crop: int) -> torch.Tensor:
    """Fixed crops of the validation photographs: the four corners and the centre of each."""
    crops = []
    for name in SPLITS["validation"]:
        image = load(name)
        h, w = image.shape[:2]
        corners = ((0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), ((h - crop) // 2, (w - crop) // 2))
        crops += [image[top:top + crop, left:left + crop] for top, left in corners]
    return _tensor(crops)


def rd_cost_gain(qs: torch.Tensor, rgb: torch.Tensor, qp: torch.Tensor, options: TrainOptions,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Per image: (D + lambda R) / (D0 + lambda R0) - 1 of coding with the QS map against no map (see module)."""
    plane = block_codec.luma(rgb)
    base = block_codec.qp_step(qp).view(-1, 1, 1, 1)
    flat = torch.ones_like(qs)

    def cost(steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coded = block_codec.code(plane, steps, generator)
        similarity = ms_ssim(coded.reconstruction.clamp(0, 255), plane, data_range=255.0, size_average=False)
        return 1.0 - similarity, coded.bpp

    with torch.no_grad():
        d0, r0 = cost(base * flat)
        d1, r1 = cost(base * flat * 2.0 ** (LAMBDA_PROBE_QP / 6.0))
        lagrangian = (d1 - d0) / torch.clamp(r0 - r1, min=1e-6)
    d, r = cost(block_codec.block_steps(qs, base, options.grid, max_delta=options.max_delta))
    return (d + lagrangian * r) / (d0 + lagrangian * r0) - 1.0


def activity_map(rgb: torch.Tensor) -> torch.Tensor:
    """The runtime's activity baseline QS for each image, as (N, 1, H/16, W/16)."""
    planes = block_codec.luma(rgb)[:, 0].numpy()
    return torch.from_numpy(np.stack([activity_qs(plane, 8) for plane in planes])[:, None]).float()


def evaluate(model: QPMapModel, crops: torch.Tensor, options: TrainOptions, qs_of=None) -> float:
    """Mean relative R-D cost change over the validation crops and QPs (negative: better than no map)."""
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        qs = qs_of(crops) if qs_of is not None else model(crops)
        gains = [rd_cost_gain(qs, crops, torch.full((len(crops),), float(qp)), options, generator).mean()
                 for qp in VALIDATION_QPS]
    return float(torch.stack(gains).mean())


def train(options: TrainOptions, workdir: str, log: Callable[[str], None] = print,
          minutes: float | None = None, stop_at: int | None = None) -> tuple[QPMapModel, dict]:
    """Train (or resume from ``workdir``) and return the model and the training record.

    ``minutes`` or ``stop_at`` (a step) end this run early, checkpointed: the same call resumes it, and the result
    is the same as one uninterrupted run.
    """
    torch.manual_seed(options.seed)
    model = QPMapModel(QPMapConfig())
    run = TrainingRun(model, options, workdir, log)
    sampler = CropSampler(training_pool(options), options.crop, run.rng)
    validation = validation_set(options.crop)
    if not run.record["history"]:
        run.record["activity_validation"] = evaluate(model, validation, options, qs_of=activity_map)
        log(f"validation R-D cost change of the activity map: {run.record['activity_validation']:+.4f}")

    def loss_of_batch() -> torch.Tensor:
        crops = sampler.batch(options.batch)
        qp = torch.from_numpy(run.rng.uniform(*QP_RANGE, options.batch)).float()
        return rd_cost_gain(model(crops), crops, qp, options, run.generator).mean()

    record = run.fit(loss_of_batch, lambda: {"validation": evaluate(model, validation, options)}, minutes, stop_at)
    return model, record
