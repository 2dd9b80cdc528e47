"""QP-map generation time per frame on CPU: ONNX Runtime vs PyTorch eager, and end to end.

One run measures, side by side:

1. the QP-map model at batch 1 (one (1, 3, H, W) RGB frame) on ONNX Runtime and on
   PyTorch eager, same weights and thread count, timing rounds alternating between
   the two backends, at 768x512 (the Kodak size the paper times: ~700 ms CPU,
   ~20 ms GPU) and 1920x1080;
2. end to end per frame with :func:`vqa_rt.runtime.pipeline.qpmap.qp_maps` (the code path of
   ``vqa-rt qpmap``: decode, YUV->RGB, the model on ONNX Runtime, QS->delta QP) on
   a raw yuv420p clip, and the same for the non-learned activity method.

It writes ``qpmap_speed.json`` (all numbers) and ``qpmap_speed.md`` (a summary) and
asserts nothing about timing. The model is the default QP-map config with seeded
random (untrained) weights: speed does not depend on the weights.

Usage: ``python benchmarks/qpmap_speed.py [--quick] [--output-dir DIR]``
"""

from __future__ import annotations

import os
import statistics

import numpy as np
from common import (
    SEED,
    Plan,
    main,
    model_markdown,
    row_at,
    run_model_benchmark,
    table,
    targets_markdown,
    timed_progress,
)

from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.pipeline.qpmap import qp_maps

TARGET_SIZE = (768, 512)
TARGET_MS = 100.0  # per 768x512 frame on 2 CPU cores
PAPER_MS = {"cpu": 700.0, "gpu": 20.0}  # Yang & Bajic, per Kodak image

FULL = Plan("full", ((768, 512, 15), (1920, 1080, 7)), 2, ((768, 512, 16), (1920, 1080, 8)))
QUICK = Plan("quick", ((256, 160, 3), (384, 256, 2)), 1, ((256, 160, 4),))


def random_rgb(width: int, height: int) -> list[np.ndarray]:
    """One (1, 3, H, W) float32 RGB frame of uniform noise in [0, 1)."""
    return [np.random.default_rng(SEED).random((1, 3, height, width), dtype=np.float32)]


def time_qp_maps(video: VideoInput, **kwargs) -> dict:
    """Wall time of one ``qp_maps`` call and its steady-state ms/frame from the progress callbacks."""
    wall, stamps, maps = timed_progress(qp_maps, video, **kwargs)
    frames = len(maps.delta)
    steady = 1000 * statistics.median(np.diff(stamps)) if frames > 1 else None
    return {"frames": frames, "wall_s": wall, "ms_per_frame_whole_call": 1000 * wall / frames,
            "first_frame_s": stamps[0], "median_ms_per_frame_steady": steady,
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


def assess_targets(results: dict) -> list[dict]:
    """The 768x512 target: measured ms/frame and whether it was met (None: not measured)."""
    model, e2e = row_at(results["model"], TARGET_SIZE), row_at(results["end_to_end"], TARGET_SIZE)
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
    settings = results["settings"]
    lines = model_markdown(
        "QP-map generation speed (CPU)", results,
        f"Model: default QP-map config (widths {settings['config']['widths']}, residual blocks"
        f" {settings['config']['blocks']}), **untrained** (seeded random init, seed {SEED});"
        f" speed does not depend on the weights. ONNX Runtime CPU with default session options,"
        f" {settings['threads']} intra-op threads; PyTorch eager with `torch.inference_mode()`,"
        f" {settings['threads']} threads. Paper (Yang & Bajic, PCS 2025): ~{PAPER_MS['cpu']:.0f} ms CPU,"
        f" ~{PAPER_MS['gpu']:.0f} ms GPU per Kodak (768x512) image.",
        "Model, batch 1 (one 1x3xHxW RGB frame)",
        ["resolution", "map", "ORT ms/frame", "PyTorch ms/frame", "ORT / PyTorch speed"],
        lambda r, o, p: [f"{r['width']}x{r['height']}", f"{-(-r['width'] // 16)}x{-(-r['height'] // 16)}",
                         f"{1000 * o['median_s_per_frame']:.1f}", f"{1000 * p['median_s_per_frame']:.1f}",
                         f"{r['ort_over_pytorch']:.2f}x"])
    e2e = [[f"{r['width']}x{r['height']}", str(r["frames"]),
            *(f"{r[method][key]:.1f}" for method in ("model", "activity")
              for key in ("median_ms_per_frame_steady", "ms_per_frame_whole_call"))] for r in results["end_to_end"]]
    lines += ["## End to end per frame (`qp_maps`: decode, YUV->RGB, model on ORT, QS->delta QP)", "",
              *table(["resolution", "frames", "model: steady ms/frame", "model: whole call ms/frame",
                      "activity: steady ms/frame", "activity: whole call ms/frame"], e2e), "",
              "Steady: median time between consecutive frames' progress callbacks. Whole call: wall time of"
              " the `qp_maps` call (opening the video and the ONNX Runtime session included) / frames."
              " These frames run back to back, while each model-alone call above follows a settle pause and"
              " alternates with PyTorch, so the two tables are separate measurements."]
    lines += targets_markdown(results, "Targets (at 768x512, 2 CPU cores)", "measured_ms", 1,
                              "Quick mode runs small sizes only, so the 768x512 target is not assessed.", "qpmap_speed")
    return "\n".join(lines)


def run(plan: Plan) -> dict:
    """Run every measurement of ``plan`` and return the results dict."""
    return run_model_benchmark(
        plan, "qpmap", "QP-map", random_rgb, lambda spec, onnx_path, directory: bench_e2e(onnx_path, plan, directory),
        lambda loaded, export_s: {
            "config": {k: list(v) for k, v in loaded.config.to_dict().items()},
            "model": f"qpmap, random init seed {SEED} (untrained)",
            "ort_session": "default SessionOptions (ORT_ENABLE_ALL), intra_op_num_threads = cores",
            "e2e": "qp_maps() defaults: ORT CPU, default threads, BT.709 limited, grid 16, base QP 32"},
        assess_targets)


if __name__ == "__main__":
    main("qpmap_speed", __doc__, lambda args: run(QUICK if args.quick else FULL), render_markdown,
         {"--quick": {"action": "store_true", "help": "small sizes and few rounds: a smoke run"}})
