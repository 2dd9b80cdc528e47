"""QP-map generation time per frame on CPU: ONNX Runtime vs PyTorch eager, and end to end.

One run measures, side by side:

1. the QP-map model at batch 1 (one (1, 3, H, W) RGB frame) on ONNX Runtime and on
   PyTorch eager, same weights and thread count, timing rounds alternating between
   the two backends, at 768x512 (the Kodak size the paper times: ~700 ms CPU,
   ~20 ms GPU) and 1920x1080;
2. end to end per frame with :func:`vqa_rt.runtime.qpmap.qp_maps` (the code path of
   ``vqa-rt qpmap``: decode, YUV->RGB, the model on ONNX Runtime, QS->delta QP) on
   a raw yuv420p clip, and the same for the non-learned activity method.

It writes ``qpmap_speed.json`` (all numbers) and ``qpmap_speed.md`` (a summary) and
asserts nothing about timing. The model is the default QP-map config with seeded
random (untrained) weights: speed does not depend on the weights.

Usage: ``python benchmarks/qpmap_speed.py [--quick] [--output-dir DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch

from fr_throughput import SETTLE_S, _machine_line, compare_at, machine_info
from vqa_rt.export.checkpoint import random_init
from vqa_rt.export.onnx_export import export_onnx
from vqa_rt.export.spec import get_spec
from vqa_rt.runtime.backends.onnxrt import OnnxRuntimeRunner
from vqa_rt.runtime.qpmap import qp_maps
from vqa_rt.runtime.scoring import VideoInput
from vqa_rt.runtime.synthetic import make_test_clip

TARGET_SIZE = (768, 512)
TARGET_MS = 100.0  # per 768x512 frame on 2 CPU cores
PAPER_MS = {"cpu": 700.0, "gpu": 20.0}  # Yang & Bajic, per Kodak image
SEED = 0


@dataclass(frozen=True)
class Plan:
    """What one run measures: sizes are (width, height, count)."""

    name: str
    model_sizes: tuple[tuple[int, int, int], ...]  # count: timed rounds per backend
    warmup: int  # untimed calls per backend and size
    e2e_sizes: tuple[tuple[int, int, int], ...]  # count: clip frames


FULL = Plan("full", ((768, 512, 15), (1920, 1080, 7)), 2, ((768, 512, 16), (1920, 1080, 8)))
QUICK = Plan("quick", ((256, 160, 3), (384, 256, 2)), 1, ((256, 160, 4),))


def backend_calls(model: torch.nn.Module, runner: OnnxRuntimeRunner, rgb: np.ndarray) -> dict:
    """Zero-argument callables running one batch-1 inference on each backend; both return the QS map."""
    tensor = torch.from_numpy(rgb)

    def run_ort() -> np.ndarray:
        return runner.infer({"rgb": rgb})["qs"]

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            return model(tensor).numpy()

    return {"onnxruntime": run_ort, "pytorch": run_torch}


def bench_model(loaded, onnx_path: str, plan: Plan, threads: int) -> list[dict]:
    """Section 1: per resolution, ORT and PyTorch eager ms/frame and their ratio."""
    torch.set_num_threads(threads)
    rows = []
    with OnnxRuntimeRunner(onnx_path, threads=threads) as runner:
        for width, height, rounds in plan.model_sizes:
            print(f"[model] {width}x{height}: {plan.warmup} warm-up + {rounds} timed rounds per backend", flush=True)
            rgb = np.random.default_rng(SEED).random((1, 3, height, width), dtype=np.float32)
            row = compare_at(backend_calls(loaded.model, runner, rgb), rounds, plan.warmup)
            rows.append({"width": width, "height": height, "warmup": plan.warmup, "rounds": rounds, **row})
    return rows


def time_qp_maps(video: VideoInput, **kwargs) -> dict:
    """Wall time of one ``qp_maps`` call and its steady-state ms/frame from the progress callbacks."""
    stamps: list[float] = []
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    maps = qp_maps(video, progress=lambda done, total: stamps.append(time.perf_counter()), **kwargs)
    wall = time.perf_counter() - start
    frames = len(maps.delta)
    steady = 1000 * statistics.median(np.diff(stamps)) if frames > 1 else None
    return {"frames": frames, "wall_s": wall, "ms_per_frame_whole_call": 1000 * wall / frames,
            "first_frame_s": stamps[0] - start, "median_ms_per_frame_steady": steady,
            "map_shape": list(maps.delta.shape[1:])}


def bench_e2e(onnx_path: str, plan: Plan, directory: str) -> list[dict]:
    """Section 2: ``qp_maps`` per frame with the model engine and with the activity method."""
    rows = []
    for width, height, frames in plan.e2e_sizes:
        print(f"[e2e] {width}x{height}: {frames} frames, model then activity", flush=True)
        path = os.path.join(directory, f"clip_{width}x{height}.yuv")
        make_test_clip(path, os.devnull, width, height, frames, seed=SEED, distortion="none")
        video = VideoInput(path, width, height, "yuv420p")
        rows.append({"width": width, "height": height, "frames": frames,
                     "model": time_qp_maps(video, engine=onnx_path),
                     "activity": time_qp_maps(video, method="activity")})
        os.remove(path)
    return rows


def _at(rows: list[dict], size: tuple[int, int]) -> dict | None:
    return next((r for r in rows if (r["width"], r["height"]) == size), None)


def assess_targets(results: dict) -> list[dict]:
    """The 768x512 target: measured ms/frame and whether it was met (None: not measured)."""
    model, e2e = _at(results["model"], TARGET_SIZE), _at(results["end_to_end"], TARGET_SIZE)
    checks = [
        ("model on ONNX Runtime CPU <= 100 ms per 768x512 frame", model and
         1000 * model["onnxruntime"]["median_s_per_frame"]),
        ("end to end (qp_maps, model), steady state <= 100 ms per 768x512 frame", e2e and
         e2e["model"]["median_ms_per_frame_steady"]),
    ]
    return [{"target": name, "threshold_ms": TARGET_MS, "measured_ms": value,
             "met": None if value is None else bool(value <= TARGET_MS)} for name, value in checks]


def render_markdown(results: dict) -> str:
    """A short human-readable summary of ``results``."""
    m, settings = results["machine"], results["settings"]
    lines = [
        "# QP-map generation speed (CPU)", "",
        f"Mode: **{settings['mode']}**. Machine: {_machine_line(m)}", "",
        f"Model: default QP-map config (widths {settings['config']['widths']}, residual blocks"
        f" {settings['config']['blocks']}), **untrained** (seeded random init, seed {SEED});"
        f" speed does not depend on the weights. ONNX Runtime CPU with default session options,"
        f" {settings['threads']} intra-op threads; PyTorch eager with `torch.inference_mode()`,"
        f" {settings['threads']} threads. Paper (Yang & Bajic, PCS 2025): ~{PAPER_MS['cpu']:.0f} ms CPU,"
        f" ~{PAPER_MS['gpu']:.0f} ms GPU per Kodak (768x512) image.", "",
        "## Model, batch 1 (one 1x3xHxW RGB frame)", "",
        "| resolution | map | ORT ms/frame | PyTorch ms/frame | ORT / PyTorch speed |",
        "|---|---|---|---|---|",
    ]
    for r in results["model"]:
        o, p = r["onnxruntime"], r["pytorch"]
        lines.append(f"| {r['width']}x{r['height']} | {-(-r['width'] // 16)}x{-(-r['height'] // 16)} | "
                     f"{1000 * o['median_s_per_frame']:.1f} | {1000 * p['median_s_per_frame']:.1f} | "
                     f"{r['ort_over_pytorch']:.2f}x |")
    lines += ["", "Medians of the timed rounds (warm-up excluded); the backends alternate round by round.", "",
              "## End to end per frame (`qp_maps`: decode, YUV->RGB, model on ORT, QS->delta QP)", "",
              "| resolution | frames | model: steady ms/frame | model: whole call ms/frame | "
              "activity: steady ms/frame | activity: whole call ms/frame |", "|---|---|---|---|---|---|"]
    for r in results["end_to_end"]:
        mo, ac = r["model"], r["activity"]
        lines.append(f"| {r['width']}x{r['height']} | {r['frames']} | {mo['median_ms_per_frame_steady']:.1f} | "
                     f"{mo['ms_per_frame_whole_call']:.1f} | {ac['median_ms_per_frame_steady']:.1f} | "
                     f"{ac['ms_per_frame_whole_call']:.1f} |")
    lines += ["", "Steady: median time between consecutive frames' progress callbacks. Whole call: wall time of"
              " the `qp_maps` call (opening the video and the ONNX Runtime session included) / frames."
              " These frames run back to back, while each model-alone call above follows a settle pause and"
              " alternates with PyTorch, so the two tables are separate measurements.", "",
              "## Targets (at 768x512, 2 CPU cores)", "", "| target | measured ms | met |", "|---|---|---|"]
    for t in results["targets"]:
        value = "n/a" if t["measured_ms"] is None else f"{t['measured_ms']:.1f}"
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {value} | {met} |")
    if settings["mode"] == "quick":
        lines += ["", "Quick mode runs small sizes only, so the 768x512 target is not assessed."]
    lines += ["", "Single run; background load affects the numbers (see the load averages above)."
              " All raw times are in `qpmap_speed.json`.", ""]
    return "\n".join(lines)


def write_results(results: dict, directory: str) -> list[str]:
    """Write the JSON and Markdown files; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, "qpmap_speed.json"), os.path.join(directory, "qpmap_speed.md")]
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
    spec = get_spec("qpmap")
    loaded = random_init(spec, seed=SEED)
    with tempfile.TemporaryDirectory(prefix="vqa-rt-bench-") as directory:
        print("[export] random-init QP-map model -> ONNX", flush=True)
        onnx_path = os.path.join(directory, "qp.onnx")
        export_onnx(spec, loaded, onnx_path, validate=False)
        model_rows = bench_model(loaded, onnx_path, plan, threads)
        e2e_rows = bench_e2e(onnx_path, plan, directory)
    machine["load_average_end"] = list(os.getloadavg())
    results = {
        "machine": machine,
        "settings": {"mode": plan.name, "threads": threads, "warmup": plan.warmup, "settle_s": SETTLE_S,
                     "config": {k: list(v) for k, v in loaded.config.to_dict().items()}, "model": f"qpmap, random init seed {SEED} (untrained)",
                     "ort_session": "default SessionOptions (ORT_ENABLE_ALL), intra_op_num_threads = cores",
                     "e2e": "qp_maps() defaults: ORT CPU, default threads, BT.709 limited, grid 16, base QP 32",
                     "total_s": None},
        "model": model_rows,
        "end_to_end": e2e_rows,
    }
    results["targets"] = assess_targets(results)
    results["settings"]["total_s"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds: a smoke run")
    parser.add_argument("--output-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                        help="where to write qpmap_speed.json and .md (default: benchmarks/results)")
    args = parser.parse_args(argv)
    results = run(QUICK if args.quick else FULL)
    for path in write_results(results, args.output_dir):
        print(f"wrote {path}")
    print(render_markdown(results))


if __name__ == "__main__":
    main()
