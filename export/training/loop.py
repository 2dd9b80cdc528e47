"""One seeded, resumable training run: the loop every ``vqa-rt train`` command shares.

Adam with a cosine-decayed learning rate; the model, the optimiser, the schedule, both random generators (NumPy
for data, torch for noise) and the run's record are saved atomically to ``workdir/last.pt`` every
``checkpoint_every`` steps and when a run stops early. A run made again with the same options resumes from
there and ends where an uninterrupted run would; other options are refused.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from vqa_rt.errors import InputError


class TrainingRun:
    """The state of one run. ``options`` is a dataclass with ``steps``, ``learning_rate``, ``seed``,
    ``validate_every`` and ``checkpoint_every``; ``record`` holds the options, the step, the seconds spent and
    the validation history."""

    def __init__(self, model: torch.nn.Module, options: Any, workdir: str, log: Callable[[str], None] = print):
        self.model, self.options, self.log = model, options, log
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, "last.pt")
        self.optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, options.steps) / options.steps)))
        self.rng = np.random.default_rng(options.seed)
        self.generator = torch.Generator().manual_seed(options.seed)
        self.record: dict[str, Any] = {"options": asdict(options), "history": [], "seconds": 0.0, "step": 0}
        if os.path.exists(self.path):
            self._resume()

    def _resume(self) -> None:
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state["record"]["options"] != self.record["options"]:
            raise InputError(f"{self.path} was made with other options ({state['record']['options']}): "
                             "give the same ones, or another --workdir")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.generator.set_state(state["torch_rng"])
        self.record = state["record"]
        self.log(f"resumed at step {self.record['step']} from {self.path}")

    def _save(self) -> None:
        payload = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                   "schedule": self.schedule.state_dict(), "numpy_rng": self.rng.bit_generator.state,
                   "torch_rng": self.generator.get_state(), "record": self.record}
        torch.save(payload, f"{self.path}.tmp")
        os.replace(f"{self.path}.tmp", self.path)

    def fit(self, loss_of_batch: Callable[[], torch.Tensor], validate: Callable[[], dict[str, float]],
            minutes: float | None = None, stop_at: int | None = None) -> dict[str, Any]:
        """Train to ``options.steps`` (or until ``minutes`` or step ``stop_at``: checkpointed, resumable).

        ``loss_of_batch`` draws a batch (from :attr:`rng`) and returns its loss; ``validate`` returns the numbers
        recorded every ``validate_every`` steps and at the end (the model in eval mode meanwhile).
        """
        started, spent_before = time.monotonic(), self.record["seconds"]
        options = self.options

        def checkpoint() -> None:
            self.record["seconds"] = spent_before + time.monotonic() - started
            self._save()

        self.model.train()
        while self.record["step"] < options.steps:
            out_of_time = minutes is not None and time.monotonic() - started > minutes * 60
            if out_of_time or (stop_at is not None and self.record["step"] >= stop_at):
                checkpoint()
                self.log(f"stopped at step {self.record['step']}; rerun to resume")
                break
            loss = loss_of_batch()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            self.record["step"] += 1
            step = self.record["step"]
            if step % options.validate_every == 0 or step == options.steps:
                self.model.eval()
                numbers = {"step": step, "train_loss": loss.item(), **validate()}
                self.model.train()
                self.record["history"].append(numbers)
                self.log(", ".join(f"{k} {v:+.4f}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in numbers.items()))
            if step % options.checkpoint_every == 0 or step == options.steps:
                checkpoint()
        self.model.eval()
        return self.record


def save_weights(model: torch.nn.Module, kind: str, record: dict[str, Any], path: str) -> None:
    """Trained weights as safetensors (no code runs on load), with vqa-rt's checkpoint record (kind, config,
    ``untrained: false``) and the training record in its metadata."""
    from safetensors.torch import save_file

    meta = {"kind": kind, "config": model.config.to_dict(), "untrained": False, "training": record}
    tensors = {key: value.contiguous() for key, value in model.state_dict().items()}
    save_file(tensors, f"{path}.tmp", metadata={"vqa_rt": json.dumps(meta)})
    os.replace(f"{path}.tmp", path)
