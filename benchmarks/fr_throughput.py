"""FR throughput on CPU: ONNX Runtime vs PyTorch eager, and ``vqa-rt score`` vs the engine alone.

One run measures, side by side:

1. the FR model at batch 1 (one frame pair and its previous frames: four
   (1, 3, H, W) inputs) on ONNX Runtime and on PyTorch eager, same weights and
   thread count, timing rounds alternating between the two backends;
2. end-to-end scoring of a raw yuv420p clip with ``vqa_rt.runtime.scoring.score``
   (the code path of ``vqa-rt score``) and once through the CLI in a subprocess,
   against the engine alone (``Runner.infer`` on pre-converted inputs).

It writes ``fr_throughput.json`` (all numbers) and ``fr_throughput.md`` (a
summary) and asserts nothing about timing. The model is the default FR config
with seeded random (untrained) weights: speed does not depend on the weights.

Usage: ``python benchmarks/fr_throughput.py [--quick] [--output-dir DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import onnxruntime as ort
import torch

import vqa_rt
from vqa_rt.export.checkpoint import random_init
from vqa_rt.export.onnx_export import export_onnx
from vqa_rt.export.spec import get_spec
from vqa_rt.runtime.backends.onnxrt import OnnxRuntimeRunner
from vqa_rt.runtime.color import normalize, yuv_to_rgb
from vqa_rt.runtime.engines import open_runner
from vqa_rt.runtime.scoring import ScoreOptions, VideoInput, score
from vqa_rt.runtime.synthetic import make_test_clip
from vqa_rt.runtime.video import open_video

TARGET_SIZE = (1920, 1080)
TARGET_ORT_SPEEDUP = 2.0  # ORT >= 2x PyTorch eager at 1080p
TARGET_E2E_FRACTION = 0.9  # end to end >= 90% of engine-only frames/s
SETTLE_S = 0.2  # pause before each timed call so the other backend's idle threads park
SEED = 0


@dataclass(frozen=True)
class Plan:
    """What one run measures: sizes are (width, height, count)."""

    name: str
    model_sizes: tuple[tuple[int, int, int], ...]  # count: timed rounds per backend
    warmup: int  # untimed calls per backend and size
    e2e_sizes: tuple[tuple[int, int, int], ...]  # count: clip frames
    cli_size: tuple[int, int]  # the e2e size also scored once through the CLI


FULL = Plan("full", ((960, 540, 5), (1920, 1080, 3)), 1, ((1920, 1080, 12), (960, 540, 8)), (1920, 1080))
QUICK = Plan("quick", ((320, 180, 3), (640, 360, 2)), 1, ((320, 180, 4),), (320, 180))


# --- machine ----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict:
    """CPU, cores, memory, OS and library versions, with the current date."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "vqa_rt": vqa_rt.__version__,
        "load_average_start": list(os.getloadavg()),
    }


# --- timing helpers ---------------------------------------------------------------------


def timed(fn, *args) -> tuple[float, object]:
    """Seconds taken by ``fn(*args)`` (after a short settle pause) and its result."""
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def summary(times: list[float]) -> dict:
    """Median seconds per frame, the frames/s it implies, and the raw times."""
    median = statistics.median(times)
    return {"median_s_per_frame": median, "frames_per_s": 1.0 / median, "times_s": times}


# --- 1. FR model: ONNX Runtime vs PyTorch eager -----------------------------------------


def export_model(directory: str) -> tuple[object, object, str, float]:
    """The seeded random-init FR model and its ONNX export; returns (spec, loaded, path, seconds)."""
    spec = get_spec("fr")
    loaded = random_init(spec, seed=SEED)
    path = os.path.join(directory, "fr.onnx")
    start = time.perf_counter()
    export_onnx(spec, loaded, path, validate=False)
    return spec, loaded, path, time.perf_counter() - start


def random_frames(width: int, height: int, seed: int) -> list[np.ndarray]:
    """Four (1, 3, H, W) float32 inputs: normalised-looking noise."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 3, height, width), dtype=np.float32) for _ in range(4)]


def backend_calls(spec, model: torch.nn.Module, session: OnnxRuntimeRunner, frames: list[np.ndarray]):
    """Zero-argument callables running one batch-1 inference on each backend; both return the score."""
    feed = dict(zip(spec.input_names, frames))
    tensors = [torch.from_numpy(a) for a in frames]

    def run_ort() -> np.ndarray:
        return session.infer(feed)["score"]

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            return model(*tensors)[0].numpy()

    return {"onnxruntime": run_ort, "pytorch": run_torch}


def compare_at(calls: dict, rounds: int, warmup: int) -> dict:
    """Warm both backends, then time ``rounds`` calls of each, alternating which goes first."""
    outputs = {name: None for name in calls}
    for _ in range(warmup):
        for name, call in calls.items():
            outputs[name] = call()
    times = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            seconds, _ = timed(calls[name])
            times[name].append(seconds)
    result = {name: summary(t) for name, t in times.items()}
    result["ort_over_pytorch"] = result["onnxruntime"]["frames_per_s"] / result["pytorch"]["frames_per_s"]
    if warmup:
        result["max_abs_score_diff"] = float(np.max(np.abs(outputs["onnxruntime"] - outputs["pytorch"])))
    return result


def bench_model(spec, loaded, onnx_path: str, plan: Plan, threads: int) -> list[dict]:
    """Section 1: per resolution, ORT and PyTorch eager frames/s and their ratio."""
    torch.set_num_threads(threads)
    rows = []
    with OnnxRuntimeRunner(onnx_path, threads=threads) as session:
        for width, height, rounds in plan.model_sizes:
            print(f"[model] {width}x{height}: {plan.warmup} warm-up + {rounds} timed rounds per backend", flush=True)
            calls = backend_calls(spec, loaded.model, session, random_frames(width, height, SEED))
            rows.append({"width": width, "height": height, "warmup": plan.warmup, "rounds": rounds,
                         **compare_at(calls, rounds, plan.warmup)})
    return rows


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
    stamps: list[float] = []
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    result = score(engine, ref, dist, progress=lambda done, total: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - start
    frames = len(result["frames"])
    steady = (frames - 1) / (stamps[-1] - stamps[0]) if frames > 1 else None
    return {"frames": frames, "wall_s": wall, "frames_per_s": frames / wall,
            "first_frame_s": stamps[0] - start, "steady_frames_per_s": steady,
            "scores": [f["metrics"]["score"] for f in result["frames"]]}


def time_cli(engine: str, ref: VideoInput, dist: VideoInput, directory: str) -> dict:
    """Wall time of ``python -m vqa_rt.cli score`` in a subprocess, process start-up included."""
    output = os.path.join(directory, "cli_scores.json")
    command = [sys.executable, "-m", "vqa_rt.cli", "score", "--engine", engine, "-r", ref.path, "-d", dist.path,
               "-w", str(ref.width), "-h", str(ref.height), "-o", output]
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
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
    with open_runner(engine) as runner:  # as score() opens it: default device and threads
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


def _at(rows: list[dict], size: tuple[int, int]) -> dict | None:
    return next((r for r in rows if (r["width"], r["height"]) == size), None)


def assess_targets(results: dict) -> list[dict]:
    """Each spec target at 1920x1080: the measured value and whether it was met (None: not measured)."""
    model, e2e = _at(results["model"], TARGET_SIZE), _at(results["end_to_end"], TARGET_SIZE)
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


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not measured"}[value]


def _machine_line(m: dict) -> str:
    return (f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM; {m['os']}; Python {m['python']}, "
            f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, numpy {m['numpy']}; {m['date']}. "
            f"Load average (1/5/15 min) at start {_loads(m['load_average_start'])}, "
            f"at end {_loads(m['load_average_end'])}.")


def _loads(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def render_markdown(results: dict) -> str:
    """A short human-readable summary of ``results``."""
    m, settings = results["machine"], results["settings"]
    lines = [
        "# FR throughput (CPU)", "",
        f"Mode: **{settings['mode']}**. Machine: {_machine_line(m)}", "",
        f"Model: default FR config, **untrained** (seeded random init, seed {SEED}); speed does not depend on the"
        f" weights. ONNX Runtime CPU with default session options (full graph optimisation),"
        f" {settings['threads']} intra-op threads; PyTorch eager with `torch.inference_mode()`,"
        f" {settings['threads']} threads.", "",
        "## FR model, batch 1 (four 1x3xHxW inputs)", "",
        "| resolution | ORT s/frame | ORT frames/s | PyTorch s/frame | PyTorch frames/s | ORT / PyTorch |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["model"]:
        o, p = r["onnxruntime"], r["pytorch"]
        lines.append(f"| {r['width']}x{r['height']} | {o['median_s_per_frame']:.3f} | {o['frames_per_s']:.3f} | "
                     f"{p['median_s_per_frame']:.3f} | {p['frames_per_s']:.3f} | {r['ort_over_pytorch']:.2f}x |")
    lines += ["", "Medians of the timed rounds (warm-up excluded); the backends alternate round by round.", "",
              "## End to end (`score`) vs engine only", "",
              "| resolution | frames | engine only frames/s | score() frames/s | ratio | "
              "score() steady frames/s | ratio |", "|---|---|---|---|---|---|---|"]
    for r in results["end_to_end"]:
        s = r["score"]
        steady = r["score_steady_over_engine"]
        lines.append(f"| {r['width']}x{r['height']} | {r['frames']} | {r['engine_only']['frames_per_s']:.3f} | "
                     f"{s['frames_per_s']:.3f} | {r['score_over_engine']:.2f} | "
                     f"{s['steady_frames_per_s'] or float('nan'):.3f} | "
                     f"{'n/a' if steady is None else f'{steady:.2f}'} |")
    for r in results["end_to_end"]:
        if "cli" in r:
            c = r["cli"]
            lines.append(f"\nCLI (`python -m vqa_rt.cli score`, subprocess, process start-up included) at "
                         f"{r['width']}x{r['height']}: {c['frames']} frames in {c['wall_s']:.1f} s = "
                         f"{c['frames_per_s']:.3f} frames/s, {r['cli_over_engine']:.2f} of engine only.")
    lines += ["", "## Targets (at 1920x1080)", "", "| target | measured | met |", "|---|---|---|"]
    for t in results["targets"]:
        value = "n/a" if t["measured"] is None else f"{t['measured']:.2f}"
        lines.append(f"| {t['target']} | {value} | {_met(t['met'])} |")
    if settings["mode"] == "quick":
        lines += ["", "Quick mode runs small sizes only, so the 1920x1080 targets are not assessed."]
    lines += ["", "Single run; background load affects the numbers (see the load averages above)."
              " All raw times are in `fr_throughput.json`.", ""]
    return "\n".join(lines)


def write_results(results: dict, directory: str) -> list[str]:
    """Write the JSON and Markdown files; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, "fr_throughput.json"), os.path.join(directory, "fr_throughput.md")]
    with open(paths[0], "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    with open(paths[1], "w") as f:
        f.write(render_markdown(results))
    return paths


def run(plan: Plan) -> dict:
    """Run every measurement of ``plan`` and return the results dict."""
    machine = machine_info()
    threads = os.cpu_count() or 1
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vqa-rt-bench-") as directory:
        print("[export] random-init FR model -> ONNX", flush=True)
        spec, loaded, onnx_path, export_s = export_model(directory)
        model_rows = bench_model(spec, loaded, onnx_path, plan, threads)
        e2e_rows = bench_e2e(onnx_path, spec.preprocess, plan, directory)
    machine["load_average_end"] = list(os.getloadavg())
    results = {
        "machine": machine,
        "settings": {"mode": plan.name, "threads": threads, "warmup": plan.warmup, "settle_s": SETTLE_S,
                     "model": f"fr default config, random init seed {SEED} (untrained)",
                     "ort_session": "default SessionOptions (ORT_ENABLE_ALL), intra_op_num_threads = cores",
                     "e2e_runner": "open_runner(engine) defaults, as score() uses",
                     "export_s": export_s, "total_s": None},
        "model": model_rows,
        "end_to_end": e2e_rows,
    }
    results["targets"] = assess_targets(results)
    results["settings"]["total_s"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds: a smoke run (~1 min)")
    parser.add_argument("--output-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                        help="where to write fr_throughput.json and .md (default: benchmarks/results)")
    args = parser.parse_args(argv)
    results = run(QUICK if args.quick else FULL)
    for path in write_results(results, args.output_dir):
        print(f"wrote {path}")
    print(render_markdown(results))


if __name__ == "__main__":
    main()
