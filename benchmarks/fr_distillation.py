"""The FR model distilled from VMAF, judged on references it never saw.

The ``test`` split's photographs (``vqa_rt.export.training.sample_images``) made into labelled clips exactly as the
training clips are (``vqa_rt.export.training.fr_data``: camera motion, 27 encoder and processing distortions,
per-frame VMAF ``vmaf_v0.6.1``). Every distorted clip is scored with ``vqa_rt.score`` (the code path of
``vqa-rt score``) by the FR model (exported to ONNX, run on ONNX Runtime) and by PSNR, SSIM and MS-SSIM; each
clip's mean score is judged against its mean VMAF with ``vqa-rt eval``'s protocol (linear mapping over all clips,
SROCC/PLCC per reference, then averaged). Also: for every reference and codec, does the FR score fall as CRF/QP
rises? A scatter of FR against VMAF is written beside the results.

Usage: ``python benchmarks/fr_distillation.py [--weights W.safetensors] [--data build/fr-data] [--quick]``
(default weights: the shipped ones).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import tempfile

import numpy as np
from common import machine_info, machine_line, main, table

from vqa_rt.export.training import fr_data
from vqa_rt.runtime.evaluation.data import load_eval_data
from vqa_rt.runtime.evaluation.plots import write_plots
from vqa_rt.runtime.evaluation.protocol import evaluate
from vqa_rt.runtime.evaluation.report import to_json
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.pipeline.score import score
from vqa_rt.runtime.scorers.baselines.vmaf import find_vmaf_ffmpeg

BASELINES = ("psnr", "ssim", "ms-ssim")
METHODS = ["fr", *BASELINES]


def mean_score(engine: str, folder: str, row: dict) -> float:
    """The clip's mean per-frame score."""
    size = (row["width"], row["height"])
    result = score(engine, VideoInput(os.path.join(folder, row["reference_path"]), *size),
                   VideoInput(os.path.join(folder, row["distorted_path"]), *size))
    metric = result["model"]["metric"]
    return float(result["pooled_metrics"][metric]["mean"])


def monotonic(rows: list[dict]) -> dict:
    """Per reference and codec: the FR means in order of rising CRF/QP, and whether they strictly fall."""
    ladders: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for row in rows:
        match = re.fullmatch(r"(x265|svtav1|vvenc|kvazaar) (?:crf|qp)(\d+)", row["distortion"])
        if match:
            ladders.setdefault((row["reference"], match[1]), []).append((int(match[2]), row["fr"]))
    checks = {}
    for (reference, codec), points in sorted(ladders.items()):
        scores = [s for _, s in sorted(points)]
        checks[f"{reference} {codec}"] = {"scores": scores, "falls": all(a > b for a, b in zip(scores, scores[1:]))}
    return checks


def run(args) -> dict:
    ffmpeg = find_vmaf_ffmpeg()
    info = machine_info()
    folder = os.path.join(args.data, "test")
    labels = fr_data.build(folder, ffmpeg, "test", seed=0, log=print)
    with open(labels) as handle:
        clips = [json.loads(line) for line in handle]
    if args.quick:
        clips = [c for c in clips if c["reference"] in {clips[0]["reference"]}]
    with tempfile.TemporaryDirectory() as tmp:
        onnx = os.path.join(tmp, "fr.onnx")
        weights = ["--checkpoint", args.weights] if args.weights else []
        subprocess.run(["vqa-rt", "export", "fr", *weights, "-o", onnx], check=True, capture_output=True)
        rows = []
        for clip in clips:
            row = {"reference": clip["reference"], "distortion": clip["distortion"],
                   "vmaf": float(np.mean(clip["vmaf"])), "fr": mean_score(onnx, folder, clip)}
            row.update({name: mean_score(name, folder, clip) for name in BASELINES})
            rows.append(row)
        table_path = os.path.join(tmp, "scores.csv")
        with open(table_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        data = load_eval_data(table_path, METHODS, mos_column="vmaf", group_by="reference")
        evaluation = evaluate(data, "linear", "vmaf", "reference")
        plots = write_plots(evaluation, data, os.path.join(args.output_dir, "fr_distillation_plots"))
    checks = monotonic(rows)
    info["load_average_end"] = os.getloadavg()
    return {"machine": info, "weights": args.weights or "shipped", "clips": len(rows),
            "references": sorted({r["reference"] for r in rows}), "evaluation": to_json(evaluation),
            "monotonic": checks, "rows": rows, "plots": [os.path.relpath(p, args.output_dir) for p in plots]}


def render(results: dict) -> str:
    lines = ["# FR distilled from VMAF: agreement on held-out references", "",
             machine_line(results["machine"], "ONNX Runtime CPU"), "",
             f"Weights: {results['weights']}. {results['clips']} distorted clips of the test references "
             f"({', '.join(results['references'])}), never trained on. Teacher: per-frame VMAF vmaf_v0.6.1, "
             "clip means. Linear mapping per method over all clips; SROCC/PLCC per reference, then averaged.", ""]
    rows = []
    for method in results["evaluation"]["methods"]:
        mean = method["per_group_mean"]
        rows.append([method["method"], f"{mean['srocc']:.3f}", f"{mean['plcc']:.3f}",
                     f"{method['overall']['srocc']:.3f}", f"{method['overall']['plcc']:.3f}"])
    lines += table(["method", "SROCC (per reference)", "PLCC (per reference)", "SROCC (all)", "PLCC (all)"], rows)
    falls = [name for name, check in results["monotonic"].items() if check["falls"]]
    lines += ["", f"FR score falls strictly with CRF/QP for {len(falls)} of {len(results['monotonic'])} "
              "reference × codec ladders.", ""]
    failing = [f"{name}: {', '.join(f'{s:.3f}' for s in check['scores'])}"
               for name, check in results["monotonic"].items() if not check["falls"]]
    lines += [f"- {line}" for line in failing] + ([""] if failing else [])
    lines += [f"Scatter plots: {', '.join(results['plots'])}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main("fr_distillation", __doc__, run, render, {
        "--weights": {"default": None, "help": "FR weights (.safetensors or .pt; default: the shipped ones)"},
        "--data": {"default": "build/fr-data", "help": "where the labelled clips are made (test/ inside)"},
        "--quick": {"action": "store_true", "help": "one reference only: a smoke run"},
    })
