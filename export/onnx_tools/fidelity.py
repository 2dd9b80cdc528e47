"""How far a transformed model (e.g. quantized) strays from its reference, on ONNX Runtime CPU.

Both run on the same frames, batch by batch, alternating which goes first so that
background load hits both alike; each keeps ONNX Runtime's default graph
optimisations (what a user gets). The report: SROCC and PLCC of the scores, max and
mean |Δscore|, the mean KL divergence KL(reference || candidate) of the level
probabilities, and the speed ratio (reference time / candidate time). A candidate
that ONNX Runtime's CPU provider cannot run gets a report saying so, without numbers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from vqa_rt.errors import ModelError

SCORE, PROBS = "score", "level_probs"
_EPS = 1e-12


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
        return "\n".join([
            f"fidelity on ONNX Runtime CPU over {self.frames} frames (reference scores {low:.3f}..{high:.3f}):",
            f"  SROCC {_fmt(self.srocc)}, PLCC {_fmt(self.plcc)}",
            f"  |Δscore| max {self.max_abs_score_diff:.4f}, mean {self.mean_abs_score_diff:.4f}",
            f"  mean KL(level probabilities) {self.mean_kl:.2e}",
            f"  speed: {self.reference_seconds:.2f} s -> {self.candidate_seconds:.2f} s ({self.speedup:.2f}x)",
        ])


def _fmt(value: float | None) -> str:
    return "n/a (constant scores)" if value is None else f"{value:.4f}"


def _correlations(reference: np.ndarray, candidate: np.ndarray) -> tuple[float | None, float | None]:
    from scipy.stats import pearsonr, spearmanr

    if np.ptp(reference) == 0 or np.ptp(candidate) == 0:
        return None, None
    return float(spearmanr(reference, candidate).statistic), float(pearsonr(reference, candidate).statistic)


def compare_models(reference: str, candidate: str, input_name: str, frames: np.ndarray, *, threads: int = 0,
                   batch_size: int = 1) -> FidelityReport:
    """Run both models on ``frames`` (the input batch, split into ``batch_size`` batches) and compare."""
    from vqa_rt.runtime.engines.backends.onnxrt import OnnxRuntimeRunner

    batches = [frames[i:i + batch_size] for i in range(0, len(frames), batch_size)]
    runners = {"reference": OnnxRuntimeRunner(reference, threads=threads),
               "candidate": OnnxRuntimeRunner(candidate, threads=threads)}
    seconds = {name: 0.0 for name in runners}
    outputs: dict[str, list[dict]] = {name: [] for name in runners}
    try:
        runners["reference"].activate()
        try:
            runners["candidate"].activate()
            runners["candidate"].infer({input_name: batches[0]})  # warm-up; some kernels fail only when run
        except Exception as exc:  # ONNX Runtime reports unsupported types at load or at run time
            message = str(exc).splitlines()[0] if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
            return FidelityReport(len(frames), runs_on_cpu=False, cpu_error=message[:300],
                                  threads=threads, batch_size=batch_size)
        runners["reference"].infer({input_name: batches[0]})
        for index, batch in enumerate(batches):
            for name in (runners if index % 2 == 0 else list(runners)[::-1]):
                start = time.perf_counter()
                outputs[name].append(runners[name].infer({input_name: batch}))
                seconds[name] += time.perf_counter() - start
    finally:
        for runner in runners.values():
            runner.deactivate()
    scores = {name: np.concatenate([o[SCORE] for o in outs]).astype(np.float64) for name, outs in outputs.items()}
    probs = {name: np.concatenate([o[PROBS] for o in outs]).astype(np.float64) for name, outs in outputs.items()}
    srocc, plcc = _correlations(scores["reference"], scores["candidate"])
    diff = np.abs(scores["candidate"] - scores["reference"])
    p, q = np.clip(probs["reference"], _EPS, 1), np.clip(probs["candidate"], _EPS, 1)
    return FidelityReport(
        frames=len(frames), runs_on_cpu=True, srocc=srocc, plcc=plcc,
        max_abs_score_diff=float(diff.max()), mean_abs_score_diff=float(diff.mean()),
        mean_kl=float(np.mean(np.sum(p * np.log(p / q), axis=1))),
        reference_seconds=seconds["reference"], candidate_seconds=seconds["candidate"],
        speedup=seconds["reference"] / seconds["candidate"],
        reference_score_range=(float(scores["reference"].min()), float(scores["reference"].max())),
        threads=threads, batch_size=batch_size,
    )
