"""Ladder scoring: four renditions of one 1080p reference in one ``vqa-rt score`` against four separate runs.

One run:

1. makes a 1080p reference (a synthetic moving textured scene, raw yuv420p) and four renditions of it,
   x265 at CRF 22, 28, 34 and 40 (``ultrafast``; imageio-ffmpeg's ffmpeg), decoded back to raw YUV as an
   encoder's reconstructions are;
2. exports the FR model with the weights vqa-rt ships (trained here, distilled from VMAF ``vmaf_v0.6.1``);
3. for the FR model and each baseline (psnr, ssim, ms-ssim, vmaf), times, alternating, ``rounds`` times:
   four ``vqa-rt score -r REF -d Di -o Di.json`` processes one after another, and one
   ``vqa-rt score -r REF -d D1 -d D2 -d D3 -d D4 --output-dir DIR`` process;
4. checks every rendition's per-frame metrics of the two ways against each other;
5. times the FR model's inference alone, in this process: one call of its ladder graph on the reference and
   the four renditions against four calls of the one-graph model, one per pair, alternating (random frames of
   the same size; the time does not depend on the pixels). This ratio is what exact sharing leaves of the
   model's work; the end-to-end ratio also saves the reference's decode and conversion and three start-ups.

It writes ``ladder.json`` (every time) and ``ladder.md`` (a summary) and asserts nothing.

Usage: ``python benchmarks/ladder.py [--frames 24] [--rounds 2] [--quick]``
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime
from common import SEED, alternate, machine_info, machine_line, main, table

from vqa_rt.runtime.engines.backends.onnxrt import OnnxRuntimeRunner
from vqa_rt.runtime.engines.ladder_graph import ladder_graph
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.scorers.baselines.vmaf import find_vmaf_ffmpeg

CRFS = (22, 28, 34, 40)
ENGINES = ("fr", "psnr", "ssim", "ms-ssim", "vmaf")
TARGET = 0.6  # ladder / separate time for the FR model


def make_ladder(folder: str, width: int, height: int, frames: int) -> tuple[str, list[str]]:
    """The reference and its x265 renditions (decoded), raw yuv420p."""
    ffmpeg = find_vmaf_ffmpeg()
    reference = os.path.join(folder, "reference.yuv")
    make_test_clip(reference, os.path.join(folder, "unused.yuv"), width, height, frames, seed=SEED)
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", "25"]
    renditions = []
    for crf in CRFS:
        coded, decoded = os.path.join(folder, f"crf{crf}.mkv"), os.path.join(folder, f"crf{crf}.yuv")
        subprocess.run([ffmpeg, "-v", "error", "-y", *raw, "-i", reference, "-c:v", "libx265", "-preset",
                        "ultrafast", "-crf", str(crf), "-x265-params", "log-level=error", coded], check=True)
        subprocess.run([ffmpeg, "-v", "error", "-y", "-i", coded, "-f", "rawvideo", "-pix_fmt", "yuv420p", decoded],
                       check=True)
        renditions.append(decoded)
    return reference, renditions


def timed_run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(["vqa-rt", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def frame_metrics(path: str) -> list[dict]:
    with open(path) as handle:
        return [frame["metrics"] for frame in json.load(handle)["frames"]]


def compare_engine(engine: str, reference: str, renditions: list[str], size: list[str], folder: str,
                   rounds: int) -> dict:
    common_args = ["score", "--engine", engine, "-r", reference, *size]
    times = {"separate": [], "ladder": []}
    for round_ in range(rounds):
        for way in (("separate", "ladder") if round_ % 2 == 0 else ("ladder", "separate")):
            out = os.path.join(folder, f"{way}-{round_}")
            os.makedirs(out)
            if way == "separate":
                times[way].append(sum(timed_run([*common_args, "-d", path, "-o", os.path.join(
                    out, os.path.basename(path)[:-4] + ".json")]) for path in renditions))
            else:
                times[way].append(timed_run([*common_args, *(arg for path in renditions for arg in ("-d", path)),
                                             "--output-dir", out]))
    names = [os.path.basename(path)[:-4] + ".json" for path in renditions]
    difference = max(abs(a[key] - b[key])
                     for name in names
                     for a, b in zip(frame_metrics(os.path.join(folder, "separate-0", name)),
                                     frame_metrics(os.path.join(folder, "ladder-0", name)))
                     for key in a)
    medians = {way: statistics.median(values) for way, values in times.items()}
    return {"times": times, "median": medians, "ratio": medians["ladder"] / medians["separate"],
            "max_abs_metric_difference": difference}


def compare_inference(model: str, width: int, height: int, renditions: int, rounds: int) -> dict:
    """The FR model's inference alone: one ladder-graph call for ``renditions`` renditions against one
    one-graph call per pair, alternating after two warm-up calls each; median seconds per frame step."""
    rng = np.random.default_rng(SEED)

    def frames(count: int) -> np.ndarray:
        return rng.standard_normal((count, 3, height, width), dtype=np.float32)

    ladder_feed = {"ref": frames(1), "ref_prev": frames(1), "dist": frames(renditions), "dist_prev": frames(renditions)}
    pair_feeds = [{**ladder_feed, "dist": ladder_feed["dist"][[row]], "dist_prev": ladder_feed["dist_prev"][[row]]}
                  for row in range(renditions)]
    with OnnxRuntimeRunner(model) as pair, OnnxRuntimeRunner(model, rewrite=ladder_graph) as ladder:
        times, _ = alternate({"separate": lambda: [pair.infer(feed) for feed in pair_feeds],
                              "ladder": lambda: ladder.infer(ladder_feed)}, rounds, warmup=2)
    medians = {way: statistics.median(values) for way, values in times.items()}
    return {"times": times, "median": medians, "ratio": medians["ladder"] / medians["separate"]}


def run(args) -> dict:
    info = machine_info(onnxruntime=onnxruntime.__version__)
    width, height, frames = (960, 540, 8) if args.quick else (1920, 1080, args.frames)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        reference, renditions = make_ladder(folder, width, height, frames)
        model = os.path.join(folder, "fr.onnx")
        subprocess.run(["vqa-rt", "export", "fr", "-o", model], check=True, capture_output=True)
        size = ["-w", str(width), "-h", str(height)]
        for engine in ENGINES:
            scratch = os.path.join(folder, engine)
            os.makedirs(scratch)
            results[engine] = compare_engine(model if engine == "fr" else engine, reference, renditions, size,
                                             scratch, args.rounds)
            print(engine, json.dumps(results[engine]["median"]), f"ratio {results[engine]['ratio']:.3f}")
        inference = compare_inference(model, width, height, len(renditions), 4 if args.quick else 8)
        print("fr inference alone", json.dumps(inference["median"]), f"ratio {inference['ratio']:.3f}")
    info["load_average_end"] = os.getloadavg()
    return {"machine": info, "settings": {"width": width, "height": height, "frames": frames, "crfs": list(CRFS),
                                          "rounds": args.rounds, "mode": "quick" if args.quick else "full"},
            "engines": results, "fr_inference": inference}


def render(results: dict) -> str:
    settings = results["settings"]
    lines = ["# Ladder scoring: one pass over a reference and its renditions", "",
             machine_line(results["machine"], f"ONNX Runtime {results['machine']['onnxruntime']}"), "",
             f"A {settings['width']}x{settings['height']} reference of {settings['frames']} frames (synthetic, raw "
             f"yuv420p) and {len(settings['crfs'])} x265 renditions (CRF {', '.join(map(str, settings['crfs']))}, "
             "decoded to raw YUV). Separate: one `vqa-rt score -r REF -d Di -o Di.json` process per rendition, one "
             "after another. Ladder: one `vqa-rt score -r REF -d D1 … -d D4 --output-dir DIR` process. Wall times, "
             f"median of {settings['rounds']} rounds, the two ways alternating. FR: the shipped (trained) model on "
             "ONNX Runtime CPU.", ""]
    rows = [[name, f"{r['median']['separate']:.2f}", f"{r['median']['ladder']:.2f}", f"{r['ratio']:.3f}",
             f"{r['max_abs_metric_difference']:.1e}"] for name, r in results["engines"].items()]
    lines += table(["engine", "4 separate runs (s)", "ladder (s)", "ladder / separate", "max \\|Δ metric\\|"], rows)
    ratio = results["engines"]["fr"]["ratio"]
    lines += ["", f"FR target ≤ {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'} ({ratio:.3f}x).", ""]
    inference, renditions = results["fr_inference"], len(settings["crfs"])
    lines += [f"FR inference alone (one process, random {settings['width']}x{settings['height']} frames, "
              f"{len(inference['times']['ladder'])} alternating rounds): one ladder-graph call for {renditions} "
              f"renditions {inference['median']['ladder']:.3f} s, one call per pair ({renditions} calls) "
              f"{inference['median']['separate']:.3f} s, ratio {inference['ratio']:.3f}: what exact sharing leaves of "
              "the model's work per frame (the feature trunk runs on N + 1 frames instead of 2N; the deformable "
              "fusion, the distorted halves of the offset predictors and the temporal branch run per rendition). "
              "The end-to-end ratio above also saves the reference's decode and conversion and "
              f"{renditions - 1} process start-ups.", ""]
    if settings["mode"] == "quick":
        lines += ["Quick run: 960x540, 8 frames.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main("ladder", __doc__, run, render, {
        "--frames": {"type": int, "default": 24, "help": "frames of the 1080p clips"},
        "--rounds": {"type": int, "default": 2, "help": "timed rounds of each way"},
        "--quick": {"action": "store_true", "help": "960x540, 8 frames: a smoke run"},
    })
