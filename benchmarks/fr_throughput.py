"""FR throughput on CPU: ONNX Runtime vs PyTorch eager, and ``vqa-rt score`` vs the engine alone.

One run measures, side by side:

1. the FR model at batch 1 (one frame pair and its previous frames: four
   (1, 3, H, W) inputs) on ONNX Runtime and on PyTorch eager, same weights and
   thread count, timing rounds alternating between the two backends;
2. end-to-end scoring of a raw yuv420p clip with ``vqa_rt.runtime.pipeline.score.score``
   (the code path of ``vqa-rt score``) and once through the CLI in a subprocess,
   against the engine alone (``Runner.infer`` on pre-converted inputs).

It writes ``fr_throughput.json`` (all numbers) and ``fr_throughput.md`` (a
summary) and asserts nothing about timing. The model is the default FR config
with seeded random (untrained) weights: speed does not depend on the weights.

Usage: ``python benchmarks/fr_throughput.py [--quick] [--output-dir DIR]``
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import common
import numpy as np
from common import (
    SEED,
    SETTLE_S,
    main,
    model_markdown,
    row_at,
    run_model_benchmark,
    table,
    targets_markdown,
    timed,
    timed_progress,
)

from vqa_rt.runtime.engines.record import resolve_engine
from vqa_rt.runtime.engines.runners import open_runner
from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb
from vqa_rt.runtime.frames.options import ScoreOptions
from vqa_rt.runtime.frames.sources import VideoInput, open_video
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.pipeline.score import score

TARGET_SIZE = (1920, 1080)
TARGET_ORT_SPEEDUP = 2.0  # ORT >= 2x PyTorch eager at 1080p
TARGET_E2E_FRACTION = 0.9  # end to end >= 90% of engine-only frames/s


@dataclass(frozen=True)
class Plan(common.Plan):
    """:class:`common.Plan` and the e2e size also scored once through the CLI."""

    cli_size: tuple[int, int]


FULL = Plan("full", ((960, 540, 5), (1920, 1080, 3)), 1, ((1920, 1080, 12), (960, 540, 8)), (1920, 1080))
QUICK = Plan("quick", ((320, 180, 3), (640, 360, 2)), 1, ((320, 180, 4),), (320, 180))


# --- 1. FR model: ONNX Runtime vs PyTorch eager -----------------------------------------


def random_frames(width: int, height: int) -> list[np.ndarray]:
    """Four (1, 3, H, W) float32 inputs: normalised-looking noise."""
    rng = np.random.default_rng(SEED)
    return [rng.standard_normal((1, 3, height, width), dtype=np.float32) for _ in range(4)]


# --- 2. end to end vs engine only -------------------------------------------------------


def preconverted_feeds(ref_path: str, dist_path: str, width: int, height: int, preprocess: dict) -> list[dict]:
    """The model inputs ``score`` builds for each frame, converted ahead of time."""
    options = ScoreOptions()
    mean, std = preprocess["mean"], preprocess["std"]

    def convert(path: str) -> list[np.ndarray]:
        with open_video(path, width, height) as reader:
            return [normalize(yuv_to_rgb(f, options.matrix, "limited"), mean, std)[None] for f in reader]

    ref, dist = convert(ref_path), convert(dist_path)
    return [{"ref": ref[i], "dist": dist[i], "ref_prev": ref[max(i - 1, 0)], "dist_prev": dist[max(i - 1, 0)]}
            for i in range(len(ref))]


def engine_only(runner, feeds: list[dict]) -> tuple[list[float], list[float]]:
    """Per-frame seconds and scores of ``runner.infer`` (no settle pause: back to back like scoring)."""
    times, scores = [], []
    for feed in feeds:
        start = time.perf_counter()
        scores.append(float(runner.infer(feed)["score"][0]))
        times.append(time.perf_counter() - start)
    return times, scores


def time_score(engine: str, ref: VideoInput, dist: VideoInput) -> dict:
    """Wall time of one ``score`` call, and its steady-state rate from the progress callbacks."""
    wall, stamps, result = timed_progress(score, engine, ref, dist)
    frames = len(result["frames"])
    steady = (frames - 1) / (stamps[-1] - stamps[0]) if frames > 1 else None
    return {"frames": frames, "wall_s": wall, "frames_per_s": frames / wall,
            "first_frame_s": stamps[0], "steady_frames_per_s": steady,
            "scores": [f["metrics"]["score"] for f in result["frames"]]}


def time_cli(engine: str, ref: VideoInput, dist: VideoInput, directory: str) -> dict:
    """Wall time of ``python -m vqa_rt.cli score`` in a subprocess, process start-up included."""
    output = os.path.join(directory, "cli_scores.json")
    command = [sys.executable, "-m", "vqa_rt.cli", "score", "--engine", engine, "-r", ref.path, "-d", dist.path,
               "-w", str(ref.width), "-h", str(ref.height), "-o", output]
    wall, _ = timed(subprocess.run, command, check=True, capture_output=True)
    with open(output) as f:
        scores = [frame["metrics"]["score"] for frame in json.load(f)["frames"]]
    return {"frames": len(scores), "wall_s": wall, "frames_per_s": len(scores) / wall, "scores": scores}


def _max_diff(a: list[float], b: list[float]) -> float:
    return float(np.max(np.abs(np.subtract(a, b))))


def bench_e2e_at(engine: str, preprocess: dict, width: int, height: int, frames: int, directory: str,
                 with_cli: bool) -> dict:
    """Section 2 at one size: engine-only timed in two halves around the ``score`` call, then the CLI."""
    ref = VideoInput(os.path.join(directory, f"ref_{width}x{height}.yuv"), width, height, "yuv420p")
    dist = VideoInput(os.path.join(directory, f"dist_{width}x{height}.yuv"), width, height, "yuv420p")
    make_test_clip(ref.path, dist.path, width, height, frames, seed=SEED)
    feeds = preconverted_feeds(ref.path, dist.path, width, height, preprocess)
    half = len(feeds) // 2
    with open_runner(resolve_engine(engine)) as runner:  # as score() opens it: default device and threads
        runner.infer(feeds[0])  # warm-up, excluded
        time.sleep(SETTLE_S)
        times, engine_scores = engine_only(runner, feeds[:half])
        lib = time_score(engine, ref, dist)
        time.sleep(SETTLE_S)
        more_times, more_scores = engine_only(runner, feeds[half:])
    times, engine_scores = times + more_times, engine_scores + more_scores
    engine_fps = len(times) / sum(times)
    row = {
        "width": width, "height": height, "frames": frames,
        "engine_only": {"frames_per_s": engine_fps, "median_s_per_frame": statistics.median(times), "times_s": times},
        "score": {k: v for k, v in lib.items() if k != "scores"},
        "score_over_engine": lib["frames_per_s"] / engine_fps,
        "score_steady_over_engine": lib["steady_frames_per_s"] / engine_fps if lib["steady_frames_per_s"] else None,
        "max_abs_score_diff_score_vs_engine": _max_diff(lib["scores"], engine_scores),
    }
    if with_cli:
        cli = time_cli(engine, ref, dist, directory)
        row["cli"] = {k: v for k, v in cli.items() if k != "scores"}
        row["cli_over_engine"] = cli["frames_per_s"] / engine_fps
        row["max_abs_score_diff_cli_vs_score"] = _max_diff(cli["scores"], lib["scores"])
    for path in (ref.path, dist.path):
        os.remove(path)
    return row


def bench_e2e(engine: str, preprocess: dict, plan: Plan, directory: str) -> list[dict]:
    """Section 2: end-to-end vs engine-only frames/s at each planned size."""
    rows = []
    for width, height, frames in plan.e2e_sizes:
        with_cli = (width, height) == plan.cli_size
        print(f"[e2e] {width}x{height}: {frames} frames (engine only, score(){', CLI' if with_cli else ''})",
              flush=True)
        rows.append(bench_e2e_at(engine, preprocess, width, height, frames, directory, with_cli))
    return rows


# --- report -----------------------------------------------------------------------------


def assess_targets(results: dict) -> list[dict]:
    """Each spec target at 1920x1080: the measured value and whether it was met (None: not measured)."""
    model, e2e = row_at(results["model"], TARGET_SIZE), row_at(results["end_to_end"], TARGET_SIZE)
    checks = [
        ("ORT >= 2x PyTorch eager at 1920x1080 (frames/s ratio)", TARGET_ORT_SPEEDUP,
         model and model["ort_over_pytorch"]),
        ("end to end >= 90% of engine only at 1920x1080 (whole score() call)", TARGET_E2E_FRACTION,
         e2e and e2e["score_over_engine"]),
        ("end to end >= 90% of engine only at 1920x1080 (steady state, first frame excluded)",
         TARGET_E2E_FRACTION, e2e and e2e["score_steady_over_engine"]),
    ]
    return [{"target": name, "threshold": threshold, "measured": value,
             "met": None if value is None else bool(value >= threshold)} for name, threshold, value in checks]


def _e2e_row(r: dict) -> list[str]:
    s, steady = r["score"], r["score_steady_over_engine"]
    return [f"{r['width']}x{r['height']}", str(r["frames"]), f"{r['engine_only']['frames_per_s']:.3f}",
            f"{s['frames_per_s']:.3f}", f"{r['score_over_engine']:.2f}",
            f"{s['steady_frames_per_s'] or float('nan'):.3f}", "n/a" if steady is None else f"{steady:.2f}"]


def render_markdown(results: dict) -> str:
    """A short human-readable summary of ``results``."""
    threads = results["settings"]["threads"]
    lines = model_markdown(
        "FR throughput (CPU)", results,
        f"Model: default FR config, **untrained** (seeded random init, seed {SEED}); speed does not depend on the"
        f" weights. ONNX Runtime CPU with default session options (full graph optimisation),"
        f" {threads} intra-op threads; PyTorch eager with `torch.inference_mode()`, {threads} threads.",
        "FR model, batch 1 (four 1x3xHxW inputs)",
        ["resolution", "ORT s/frame", "ORT frames/s", "PyTorch s/frame", "PyTorch frames/s", "ORT / PyTorch"],
        lambda r, o, p: [f"{r['width']}x{r['height']}", f"{o['median_s_per_frame']:.3f}", f"{o['frames_per_s']:.3f}",
                         f"{p['median_s_per_frame']:.3f}", f"{p['frames_per_s']:.3f}", f"{r['ort_over_pytorch']:.2f}x"])
    lines += ["## End to end (`score`) vs engine only", "",
              *table(["resolution", "frames", "engine only frames/s", "score() frames/s", "ratio",
                      "score() steady frames/s", "ratio"], [_e2e_row(r) for r in results["end_to_end"]])]
    for r in results["end_to_end"]:
        if "cli" in r:
            c = r["cli"]
            lines.append(f"\nCLI (`python -m vqa_rt.cli score`, subprocess, process start-up included) at "
                         f"{r['width']}x{r['height']}: {c['frames']} frames in {c['wall_s']:.1f} s = "
                         f"{c['frames_per_s']:.3f} frames/s, {r['cli_over_engine']:.2f} of engine only.")
    lines += targets_markdown(results, "Targets (at 1920x1080)", "measured", 2,
                              "Quick mode runs small sizes only, so the 1920x1080 targets are not assessed.",
                              "fr_throughput")
    return "\n".join(lines)


def run(plan: Plan) -> dict:
    """Run every measurement of ``plan`` and return the results dict."""
    return run_model_benchmark(
        plan, "fr", "FR", random_frames,
        lambda spec, onnx_path, directory: bench_e2e(onnx_path, spec.preprocess, plan, directory),
        lambda loaded, export_s: {
            "model": f"fr default config, random init seed {SEED} (untrained)",
            "ort_session": "default SessionOptions (ORT_ENABLE_ALL), intra_op_num_threads = cores",
            "e2e_runner": "open_runner(engine) defaults, as score() uses",
            "export_s": export_s},
        assess_targets)


if __name__ == "__main__":
    main("fr_throughput", __doc__, lambda args: run(QUICK if args.quick else FULL), render_markdown,
         {"--quick": {"action": "store_true", "help": "small sizes and few rounds: a smoke run (~1 min)"}})
