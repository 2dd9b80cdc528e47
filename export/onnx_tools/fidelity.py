"""How far a transformed model (e.g. quantized) strays from its reference, on ONNX Runtime CPU.

Both run on the same input batches, alternating which goes first so that background load hits
both alike; each keeps ONNX Runtime's default graph optimisations (what a user gets). The report:
SROCC and PLCC of the per-frame scores, max and mean |Δscore|, the speed ratio (reference time /
candidate time); for models with level probabilities (NR) the mean KL divergence
KL(reference || candidate); where batches belong to clips (FR: one per distorted video), the same
over each clip's mean score. A candidate that ONNX Runtime's CPU provider cannot run gets a report
saying so, without numbers.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

from vqa_rt.errors import ModelError

SCORE, PROBS = "score", "level_probs"
_EPS = 1e-12


@dataclass(frozen=True)
class ScoreAgreement:
    """How closely two sets of scores agree: rank and linear correlation (None for constant scores),
    largest and mean absolute difference."""

    srocc: float | None
    plcc: float | None
    max_abs_score_diff: float
    mean_abs_score_diff: float

    @classmethod
    def of(cls, reference: np.ndarray, candidate: np.ndarray) -> ScoreAgreement:
        from scipy.stats import pearsonr, spearmanr

        diff = np.abs(candidate - reference)
        constant = np.ptp(reference) == 0 or np.ptp(candidate) == 0
        return cls(None if constant else float(spearmanr(reference, candidate).statistic),
                   None if constant else float(pearsonr(reference, candidate).statistic),
                   float(diff.max()), float(diff.mean()))

    def lines(self) -> list[str]:
        return [f"  SROCC {_fmt(self.srocc)}, PLCC {_fmt(self.plcc)}",
                f"  |Δscore| max {self.max_abs_score_diff:.4f}, mean {self.mean_abs_score_diff:.4f}"]


@dataclass(frozen=True)
class FidelityReport:
    frames: int
    runs_on_cpu: bool
    cpu_error: str | None = None
    srocc: float | None = None
    plcc: float | None = None
    max_abs_score_diff: float | None = None
    mean_abs_score_diff: float | None = None
    mean_kl: float | None = None
    clips: int | None = None
    per_clip: ScoreAgreement | None = None  # over the clips' mean scores
    reference_seconds: float | None = None
    candidate_seconds: float | None = None
    speedup: float | None = None
    reference_score_range: tuple[float, float] | None = None
    threads: int = 0
    batch_size: int = 1

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """A few lines for the terminal."""
        if not self.runs_on_cpu:
            return f"fidelity: not measured, ONNX Runtime CPU cannot run the quantized model ({self.cpu_error})"
        low, high = self.reference_score_range
        frames = ScoreAgreement(self.srocc, self.plcc, self.max_abs_score_diff, self.mean_abs_score_diff)
        lines = [f"fidelity on ONNX Runtime CPU over {self.frames} frames (reference scores {low:.3f}..{high:.3f}):",
                 *frames.lines()]
        if self.per_clip is not None:
            lines += [f"  per clip (mean score of each of {self.clips} clips):", *self.per_clip.lines()]
        if self.mean_kl is not None:
            lines.append(f"  mean KL(level probabilities) {self.mean_kl:.2e}")
        lines.append(f"  speed: {self.reference_seconds:.2f} s -> {self.candidate_seconds:.2f} s ({self.speedup:.2f}x)")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a (constant scores)" if value is None else f"{value:.4f}"


def _mean_kl(reference: np.ndarray, candidate: np.ndarray) -> float:
    p, q = np.clip(reference, _EPS, 1), np.clip(candidate, _EPS, 1)
    return float(np.mean(np.sum(p * np.log(p / q), axis=1)))


def compare_models(reference: str, candidate: str, batches: Iterable[tuple[int | None, dict[str, np.ndarray]]], *,
                   threads: int = 0, batch_size: int = 1) -> FidelityReport:
    """Run both models on ``batches`` (each a clip number, or None where frames form no clips, and an input
    feed), read as they are run, and compare their outputs."""
    from vqa_rt.runtime.engines.backends.onnxrt import OnnxRuntimeRunner

    batches = iter(batches)
    first = next(batches)
    runners = {"reference": OnnxRuntimeRunner(reference, threads=threads),
               "candidate": OnnxRuntimeRunner(candidate, threads=threads)}
    seconds = {name: 0.0 for name in runners}
    outputs: dict[str, list[dict]] = {name: [] for name in runners}
    clips: list[int | None] = []
    try:
        runners["reference"].activate()
        try:
            runners["candidate"].activate()
            runners["candidate"].infer(first[1])  # warm-up; some kernels fail only when run
        except Exception as exc:  # ONNX Runtime reports unsupported types at load or at run time
            message = str(exc).splitlines()[0] if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
            return FidelityReport(len(next(iter(first[1].values()))), runs_on_cpu=False, cpu_error=message[:300],
                                  threads=threads, batch_size=batch_size)
        runners["reference"].infer(first[1])
        for index, (clip, feed) in enumerate(itertools.chain([first], batches)):
            for name in (runners if index % 2 == 0 else list(runners)[::-1]):
                start = time.perf_counter()
                outputs[name].append(runners[name].infer(feed))
                seconds[name] += time.perf_counter() - start
            clips += [clip] * len(outputs["reference"][-1][SCORE])
    finally:
        for runner in runners.values():
            runner.deactivate()
    scores = {name: np.concatenate([o[SCORE] for o in outs]).astype(np.float64) for name, outs in outputs.items()}
    frames = ScoreAgreement.of(scores["reference"], scores["candidate"])
    per_clip, labels = None, sorted({c for c in clips if c is not None})
    if labels:
        owner = np.asarray([labels.index(c) for c in clips])
        means = {name: np.bincount(owner, s) / np.bincount(owner) for name, s in scores.items()}
        per_clip = ScoreAgreement.of(means["reference"], means["candidate"])
    kl = None
    if PROBS in outputs["reference"][0]:
        probs = {name: np.concatenate([o[PROBS] for o in outs]).astype(np.float64) for name, outs in outputs.items()}
        kl = _mean_kl(probs["reference"], probs["candidate"])
    return FidelityReport(
        frames=len(clips), runs_on_cpu=True, srocc=frames.srocc, plcc=frames.plcc,
        max_abs_score_diff=frames.max_abs_score_diff, mean_abs_score_diff=frames.mean_abs_score_diff, mean_kl=kl,
        clips=len(labels) or None, per_clip=per_clip,
        reference_seconds=seconds["reference"], candidate_seconds=seconds["candidate"],
        speedup=seconds["reference"] / seconds["candidate"],
        reference_score_range=(float(scores["reference"].min()), float(scores["reference"].max())),
        threads=threads, batch_size=batch_size,
    )
