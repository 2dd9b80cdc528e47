"""NR model quantization on ONNX Runtime CPU: fidelity against FP32 and speed, per mode.

One run:

1. builds the ``small`` NR configuration (about 34 M parameters) with seeded random
   weights (**untrained**: see ``build_untrained`` in ``export/models/nr.py`` for how the
   init makes scores vary with the image), exports it to ONNX and validates it against
   PyTorch (batch 1 and 3);
2. makes a calibration video (64 frames from 8 synthetic clips) and a separate evaluation
   video (120 frames from 12 other clips), 320x240, each clip a moving textured scene
   left clean, JPEG-coded, blurred or both, at several strengths;
3. runs :func:`vqa_rt.export.onnx_tools.quantize.quantize_model` (the code path of ``vqa-rt quantize``)
   in every mode: calibration on the first video, the fidelity report on the second, both
   models on ONNX Runtime CPU in the same process, batches alternating between them.

It writes ``nr_quantization.json`` (every number) and ``nr_quantization.md`` (a summary)
and asserts nothing.

Usage: ``python benchmarks/nr_quantization.py [--quick] [--output-dir DIR]``
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass

from common import SEED, load_average, machine_info, machine_line, main, table

from vqa_rt.export.onnx_tools.quantize_modes import MODES
from vqa_rt.runtime.frames.options import ScoreOptions
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.synthetic import DISTORTIONS, make_test_clip

TARGETS = {"srocc": 0.99, "max_abs_score_diff": 0.05, "speedup": 1.5}  # for int8, on >= 100 frames
WIDTH, HEIGHT = 320, 240
BATCH = 4


@dataclass(frozen=True)
class Plan:
    name: str
    preset: str
    calibration: tuple[int, int]  # clips, frames per clip
    evaluation: tuple[int, int]


FULL = Plan("full", "small", (8, 8), (12, 10))
QUICK = Plan("quick", "tiny", (4, 5), (4, 5))


def make_video(path: str, first_seed: int, clips: int, frames: int) -> VideoInput:
    """``clips`` synthetic clips of ``frames`` frames, each distorted differently, one after another."""
    qualities = (5, 15, 40, 80)
    with tempfile.TemporaryDirectory() as scratch, open(path, "wb") as out:
        for clip in range(clips):
            distortion = DISTORTIONS[clip % len(DISTORTIONS)]
            quality = qualities[(clip // len(DISTORTIONS)) % len(qualities)]
            ref, dist = os.path.join(scratch, "ref.yuv"), os.path.join(scratch, "dist.yuv")
            make_test_clip(ref, dist, WIDTH, HEIGHT, frames, seed=first_seed + clip, distortion=distortion,
                           quality=quality)
            with open(dist, "rb") as part:
                out.write(part.read())
    return VideoInput(path, WIDTH, HEIGHT)


def run(plan: Plan) -> dict:
    import onnxruntime as ort
    import torch

    from vqa_rt.export.models.checkpoint import random_init
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.onnx_tools.quantize import quantize_model
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    machine = machine_info(torch=torch.__version__, onnxruntime=ort.__version__)
    start = time.perf_counter()
    spec = get_spec("nr")
    loaded = random_init(spec, seed=SEED, config=spec.config_from_preset(plan.preset))
    options = ScoreOptions(frame_stride=1, batch_size=BATCH)
    results = []
    with tempfile.TemporaryDirectory(prefix="vqa-rt-nrq-") as folder:
        source = os.path.join(folder, "nr.onnx")
        print(f"[export] random-init {plan.preset} NR model -> ONNX", flush=True)
        validation = export_onnx(spec, loaded, source)
        calibration = make_video(os.path.join(folder, "calibration.yuv"), 0, *plan.calibration)
        evaluation = make_video(os.path.join(folder, "evaluation.yuv"), 1000, *plan.evaluation)
        for mode in MODES:
            print(f"[quantize] {mode}", flush=True)
            output = os.path.join(folder, f"nr.{mode}.onnx")
            mode_start = time.perf_counter()
            report = quantize_model(source, output, mode, calibration, options, evaluation=evaluation)
            results.append({"mode": mode, "description": MODES[mode].description, "target": MODES[mode].target,
                             "seconds": time.perf_counter() - mode_start, "bytes": os.path.getsize(output),
                             **report.as_dict()})
        source_bytes = os.path.getsize(source)
    machine["load_average_end"] = load_average()
    results_by_mode = {r["mode"]: r for r in results}
    int8 = results_by_mode["int8"]
    targets = [
        {"target": f"int8 SROCC vs FP32 >= {TARGETS['srocc']}", "value": int8["srocc"],
         "met": int8["srocc"] is not None and int8["srocc"] >= TARGETS["srocc"]},
        {"target": f"int8 max \\|Δscore\\| <= {TARGETS['max_abs_score_diff']} (1..5 scale)",
         "value": int8["max_abs_score_diff"],
         "met": int8["max_abs_score_diff"] is not None and int8["max_abs_score_diff"] <= TARGETS["max_abs_score_diff"]},
        {"target": f"int8 speed-up on ONNX Runtime CPU >= {TARGETS['speedup']}x", "value": int8["speedup"],
         "met": int8["speedup"] is not None and int8["speedup"] >= TARGETS["speedup"]},
        {"target": "evaluated on >= 100 different frames", "value": int8["frames"], "met": int8["frames"] >= 100},
    ]
    return {
        "machine": machine,
        "settings": {"mode": plan.name, "preset": plan.preset, "batch_size": BATCH, "threads": "ONNX Runtime default",
                     "frames": f"{WIDTH}x{HEIGHT} synthetic clips", "calibration_clips": plan.calibration,
                     "evaluation_clips": plan.evaluation, "total_s": time.perf_counter() - start},
        "model": {"kind": "nr", "preset": plan.preset, "config": loaded.config.to_dict(), "untrained": True,
                  "weights": f"seeded random init (seed {SEED}), UNTRAINED", "onnx_bytes": source_bytes,
                  "parameters": sum(p.numel() for p in loaded.model.parameters()),
                  "validation": {f"batch {n} at {h}x{w}": errors
                                 for (n, h, w), errors in validation.max_rel_error.items()}},
        "modes": results,
        "targets": targets,
    }


def _num(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(results: dict) -> str:
    m, model, settings = results["machine"], results["model"], results["settings"]
    software = f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, numpy {m['numpy']}"
    rows = [[r["mode"], str(r["frames"]), _num(r["srocc"], 4), _num(r["plcc"], 4), _num(r["max_abs_score_diff"], 4),
             _num(r["mean_abs_score_diff"], 4), _num(r["mean_kl"], 5),
             f"{_num(r['speedup'], 2)}x" if r["runs_on_cpu"] else "cannot run on the CPU",
             f"{r['bytes'] / 2**20:.1f}"] for r in results["modes"]]
    ranges = {tuple(r["reference_score_range"]) for r in results["modes"] if r["reference_score_range"]}
    low, high = ranges.pop() if ranges else (None, None)
    fp8 = next(r for r in results["modes"] if r["mode"] == "fp8")
    lines = [
        "# NR quantization: fidelity and speed on ONNX Runtime CPU", "",
        f"Mode: **{settings['mode']}**. Machine: {machine_line(m, software)}", "",
        f"**The weights are random (seeded, untrained).** The model is the `{model['preset']}` NR configuration "
        f"({model['parameters'] / 1e6:.1f} M parameters, {model['onnx_bytes'] / 2**20:.0f} MiB FP32 ONNX): a CLIP-style "
        "ViT, an MLP projector and a Llama-style decoder, scored in one prefill. Its init (transformers' N(0, 0.02²), "
        "level rows orthogonal to a flat frame's hidden state) makes scores vary with the image, so the rank "
        "correlations below mean something; they compare two untrained models and say nothing about quality "
        "prediction. The export matched PyTorch within "
        + ", ".join(f"{case}: {max(errors.values()):.1e}" for case, errors in model["validation"].items())
        + " (max relative error).", "",
        f"Calibration: {settings['calibration_clips'][0]} clips x {settings['calibration_clips'][1]} frames; "
        f"evaluation: {settings['evaluation_clips'][0]} other clips x {settings['evaluation_clips'][1]} frames "
        f"({settings['frames']}, clean / JPEG / blur / both, several strengths). FP32 scores on the evaluation "
        f"frames span {_num(low, 3)}..{_num(high, 3)} on the 1..5 scale. Both models run on ONNX Runtime CPU with "
        f"default session options, batch {settings['batch_size']}, batches alternating between them; speed-up = "
        "FP32 time / quantized time over the same frames.", "",
        *table(["mode", "frames", "SROCC", "PLCC", "max abs Δscore", "mean abs Δscore", "mean KL", "speed-up",
                "MiB"], rows), "",
        "int8 is explicit Q/DQ (symmetric int8, per-channel weights, 99.99th-percentile activation ranges) on every "
        "linear layer except the patch embedding, the projector, the gated MLPs' down projections and the single-row "
        "layers of the last position, which stay float; ONNX Runtime runs it with its int8 kernels after re-expressing the "
        "signed activations as unsigned (exact). The weight-only modes are ONNX Runtime's MatMulNBits. "
        f"fp8: {fp8['cpu_error'] or 'ran'}.", "",
        "## Targets", "",
        *table(["target", "value", "met"], [[t["target"], _num(t["value"], 4) if isinstance(t["value"], float)
                                             else str(t["value"]), "yes" if t["met"] else "**no**"]
                                            for t in results["targets"]]),
        "", "Single run; background load affects the speed-ups (see the load averages above). "
            "Every number is in `nr_quantization.json`.", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main("nr_quantization", __doc__, lambda args: run(QUICK if args.quick else FULL), render_markdown,
         {"--quick": {"action": "store_true", "help": "tiny preset, few frames: a smoke run"}})
