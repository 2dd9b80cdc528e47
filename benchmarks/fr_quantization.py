"""INT8 FR on ONNX Runtime CPU: fidelity against the float model on held-out clips, and speed, with the CPU's ISA.

One run:

1. makes the ``train``, ``validation`` and ``test`` splits of the FR training clips
   (``vqa_rt.export.training.fr_data``, as ``vqa-rt train fr`` makes them: photographs, the training split's with
   24 dead-leaves scenes, camera motion, encoder and processing distortions; 320x192, 12 frames);
2. exports the FR model with the weights vqa-rt ships (trained here, distilled from VMAF ``vmaf_v0.6.1``);
3. runs :func:`vqa_rt.export.onnx_tools.quantize.quantize_model` (the code path of ``vqa-rt quantize fr.onnx
   --mode int8``): calibration on the validation split (64 frame pairs spread over it), the fidelity report on
   every frame of every test clip, both models on ONNX Runtime CPU in one process, frames alternating;
4. does the same with the three choices the FR recipe rejects (the trunk's first stage in int8 too; percentile
   ranges; Q/DQ on the convolutions' outputs too), so the choice stays checked;
5. calibrates the recipe and the first of those on content unlike the scored content (the training split,
   dead-leaves scenes included) and evaluates them on the validation split;
6. times both models side by side on larger frames (960x540, 1920x1080; seeded random inputs).

It writes ``fr_quantization.json`` (every number) and ``fr_quantization.md`` (a summary) and asserts nothing.

Usage: ``python benchmarks/fr_quantization.py [--data build/fr-data] [--quick]``
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import tempfile

import numpy as np
import onnxruntime
from common import SEED, machine_info, machine_line, main, table

from vqa_rt.export.onnx_tools import quantize
from vqa_rt.export.onnx_tools.fidelity import compare_models
from vqa_rt.export.training import fr_data
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.pipeline.manifest import read_manifest
from vqa_rt.runtime.scorers.baselines.vmaf import find_vmaf_ffmpeg

THREADS = 2
TRAIN_SYNTHETIC = 24  # dead-leaves scenes in the training split (`vqa-rt train fr`'s default: its clips are reused)
TARGETS = {"clip SROCC": 0.99, "clip max |Δscore|": 0.05}
ISA_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
SPEED_SIZES = ((960, 540), (1920, 1080))
SPEED_FRAMES = 6
SHIPPED = "shipped recipe (min-max ranges, Q/DQ on inputs, first stage float)"
ALL_TRUNK = "first stage in int8 too (all 20 trunk convolutions)"
VARIANTS = {  # name: the FR recipe's fields changed
    SHIPPED: {},
    ALL_TRUNK: {"nodes": quantize.trunk_convs},
    "percentile 99.99 ranges": {"int8_calibration": "Percentile"},
    "Q/DQ on outputs too": {"quantize_outputs": True},
}


def isa() -> list[str]:
    """The int8-relevant instruction set extensions this CPU reports."""
    with open("/proc/cpuinfo") as handle:
        flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    return [flag for flag in ISA_FLAGS if flag in flags]


def write_manifest(path: str, folder: str, labels: str, limit: int | None) -> int:
    with open(labels) as handle:
        clips = [json.loads(line) for line in handle][:limit]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reference", "distorted", "width", "height", "fps"])
        for clip in clips:
            writer.writerow([os.path.join(folder, clip["reference_path"]), os.path.join(folder, clip["distorted_path"]),
                             clip["width"], clip["height"], fr_data.ClipSpec().fps])
    return len(clips)


def quantized_variant(source: str, output: str, calibration: str, evaluation: str, changes: dict) -> dict:
    shipped = quantize.RECIPES["fr"]
    quantize.RECIPES["fr"] = dataclasses.replace(shipped, **changes)
    try:
        report = quantize.quantize_model(source, output, "int8", read_manifest(calibration), FrameOptions(),
                                         evaluation=read_manifest(evaluation), threads=THREADS)
    finally:
        quantize.RECIPES["fr"] = shipped
    return report.as_dict()


def speed_at(source: str, quantized: str, width: int, height: int) -> dict:
    rng = np.random.default_rng(SEED)
    feeds = ((None, {name: rng.standard_normal((1, 3, height, width), dtype=np.float32)
                     for name in ("ref", "dist", "ref_prev", "dist_prev")}) for _ in range(SPEED_FRAMES))
    report = compare_models(source, quantized, feeds, threads=THREADS)
    return {"size": [width, height], "frames": report.frames, "float_seconds": report.reference_seconds,
            "int8_seconds": report.candidate_seconds, "speedup": report.speedup}


def run(args) -> dict:
    info = machine_info(onnxruntime=onnxruntime.__version__, isa=isa())
    ffmpeg = find_vmaf_ffmpeg()
    limit = 12 if args.quick else None
    with tempfile.TemporaryDirectory() as tmp:
        manifests = {}
        for split, synthetic in (("train", TRAIN_SYNTHETIC), ("validation", 0), ("test", 0)):
            folder = os.path.abspath(os.path.join(args.data, split))
            labels = fr_data.build(folder, ffmpeg, split, synthetic=synthetic, seed=0, log=print)
            manifests[split] = os.path.join(tmp, f"{split}.csv")
            write_manifest(manifests[split], folder, labels, limit)
        source = os.path.join(tmp, "fr.onnx")
        subprocess.run(["vqa-rt", "export", "fr", "-o", source], check=True, capture_output=True)
        variants = {}
        for name, changes in VARIANTS.items():
            output = os.path.join(tmp, f"fr.{len(variants)}.onnx")
            variants[name] = quantized_variant(source, output, manifests["validation"], manifests["test"], changes)
            print(name, json.dumps(variants[name]["per_clip"]))
            if name == SHIPPED:
                speeds = [speed_at(source, output, *size) for size in SPEED_SIZES]
        unlike = {}
        for name in (SHIPPED, ALL_TRUNK):
            output = os.path.join(tmp, f"fr.unlike{len(unlike)}.onnx")
            unlike[name] = quantized_variant(source, output, manifests["train"], manifests["validation"],
                                             VARIANTS[name])
            print("unlike calibration:", name, json.dumps(unlike[name]["per_clip"]))
    info["load_average_end"] = os.getloadavg()
    return {"machine": info, "settings": {"mode": "quick" if args.quick else "full", "threads": THREADS,
                                          "calibration_frames": quantize.MAX_CALIBRATION_FRAMES},
            "variants": variants, "unlike_calibration": unlike, "speed": speeds}


def fidelity_table(reports: dict) -> list[str]:
    rows = [[name, f"{r['per_clip']['srocc']:.4f}", f"{r['per_clip']['max_abs_score_diff']:.4f}", f"{r['srocc']:.4f}",
             f"{r['max_abs_score_diff']:.4f}", f"{r['speedup']:.2f}x"] for name, r in reports.items()]
    return table(["quantized", "clip SROCC", "clip max \\|Δ\\|", "frame SROCC", "frame max \\|Δ\\|",
                  "speed vs float (320x192)"], rows)


def targets_line(report: dict) -> str:
    clip = report["per_clip"]
    met = {"clip SROCC": clip["srocc"] >= TARGETS["clip SROCC"],
           "clip max |Δscore|": clip["max_abs_score_diff"] <= TARGETS["clip max |Δscore|"]}
    return "Targets (shipped recipe): " + "; ".join(
        f"{name} {'≥' if 'SROCC' in name else '≤'} {target}: {'met' if met[name] else 'NOT met'}"
        for name, target in TARGETS.items()) + "."


def render(results: dict) -> str:
    machine = results["machine"]
    shipped = results["variants"][SHIPPED]
    unlike = results["unlike_calibration"]
    lines = ["# INT8 FR on ONNX Runtime CPU", "",
             machine_line(machine, f"ONNX Runtime {machine['onnxruntime']}, {results['settings']['threads']} threads"),
             "", f"Instruction set extensions for int8: {', '.join(machine['isa']) or 'none of ' + ', '.join(ISA_FLAGS)}"
             ".", "",
             "The FR model with the shipped weights (trained here, distilled from VMAF vmaf_v0.6.1), quantized by "
             "`vqa-rt quantize fr.onnx --mode int8`: int8 Q/DQ on 16 of the 20 convolutions of its ResNet-18 trunk "
             "(the stem and layers 2-4; layer1, its first stage, stays float), the offset predictors, deformable "
             "convolutions, temporal branch and heads in float. Calibration: "
             f"{results['settings']['calibration_frames']} frame pairs spread over the validation split. Evaluation: "
             f"every frame of the {shipped['clips']} test clips ({shipped['frames']} frames; references never "
             "trained on or calibrated on); a clip's score is its frames' mean.", ""]
    lines += fidelity_table(results["variants"]) + ["", targets_line(shipped), ""]
    lines += ["Calibrated on content unlike the scored content: "
              f"{results['settings']['calibration_frames']} frame pairs spread over the training split "
              f"(photographs and {TRAIN_SYNTHETIC} synthetic dead-leaves scenes), evaluated on every frame of the "
              f"{unlike[SHIPPED]['clips']} validation clips:", ""]
    lines += fidelity_table(unlike) + ["", targets_line(unlike[SHIPPED]), ""]
    lines += [f"Speed on larger frames (seeded random inputs, {SPEED_FRAMES} frames each, alternating):", ""]
    lines += table(["size", "float s/frame", "int8 s/frame", "speed-up"],
                   [[f"{s['size'][0]}x{s['size'][1]}", f"{s['float_seconds'] / s['frames']:.3f}",
                     f"{s['int8_seconds'] / s['frames']:.3f}", f"{s['speedup']:.2f}x"] for s in results["speed"]])
    best = max([*(report["speedup"] for report in results["variants"].values()),
                *(s["speedup"] for s in results["speed"])])
    if best < 1.1:
        lines += ["", f"No speed-up on this CPU (at best {best:.2f}x in any variant): with Q/DQ on the convolutions' "
                  "inputs only, ONNX Runtime dequantizes and runs its float convolutions; with Q/DQ on their outputs "
                  "too it fuses int8 convolutions (QLinearConv), which do not beat its float ones on this model's "
                  "layers. The int8 file is TensorRT's int8 input.", ""]
    else:
        lines += ["", f"Best speed-up on this CPU: {best:.2f}x.", ""]
    if results["settings"]["mode"] == "quick":
        lines += ["Quick run: 12 clips per split only.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main("fr_quantization", __doc__, run, render, {
        "--data": {"default": "build/fr-data", "help": "where the labelled clips are made (train/, validation/, test/)"},
        "--quick": {"action": "store_true", "help": "12 clips per split: a smoke run"},
    })
