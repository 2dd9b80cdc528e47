"""TensorRT plan builds with no GPU (TensorRT for RTX, ahead of time): build time and plan size per model x targets x
precision x DeformConv handling, in one run.

Models (seeded random weights, untrained: build time and size do not depend on the weights): the default FR model
(DeformConv decomposed into standard ops, and through vqa-rt's plugin where ``libvqa_trt_plugin.so`` is built), the
``tiny`` and ``small`` NR models (FP32, FP16, int8 Q/DQ from vqa-rt's quantizer; FP8 Q/DQ on targets that have
it) and the QP-map model. Each builds for one target at a time and for all four at once (one plan carrying
several). Profiles are build-engine's defaults (frames 640x360 to 3840x2160, batch 1 to 4).

It writes ``engine_build.json`` (every build) and ``engine_build.md`` (a summary with the machine) and asserts
nothing about timing.

Usage: ``python benchmarks/engine_build.py [--quick] [--output-dir DIR]``
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
from common import SEED, machine_info, machine_line, main, table

from vqa_rt.errors import BackendUnavailableError
from vqa_rt.export.models.checkpoint import random_init
from vqa_rt.export.models.spec import get_spec
from vqa_rt.export.onnx_tools.calibration_sets import single_feeds
from vqa_rt.export.onnx_tools.quantize import quantize_onnx
from vqa_rt.export.onnx_tools.trt_build import BuildOptions, build_engine
from vqa_rt.export.to_onnx.onnx_export import export_onnx
from vqa_rt.runtime.engines.backends.trt_flavours import RTX, import_flavour
from vqa_rt.runtime.engines.native.libraries import find_plugin

TARGET_SETS = ("sm80", "sm86", "sm89", "sm120", "sm80,sm86,sm89,sm120")
FP8_TARGETS = ("sm89", "sm120")
QUICK_TARGET_SETS = ("sm89", "sm80,sm120")


def export(kind: str, folder: str, preset: str | None = None) -> str:
    spec = get_spec(kind)
    loaded = random_init(spec, seed=SEED, config=spec.config_from_preset(preset) if preset else None)
    path = os.path.join(folder, f"{kind}{'-' + preset if preset else ''}.onnx")
    export_onnx(spec, loaded, path, validate=False)
    return path


def quantized(source: str, mode: str, size: int) -> str:
    """``source`` with ``mode`` Q/DQ, calibrated on seeded random frames of the NR model's input size."""
    path = source.replace(".onnx", f"-{mode}.onnx")
    frames = np.random.default_rng(SEED).random((8, 3, size, size), dtype=np.float32)
    quantize_onnx(source, path, mode, single_feeds("pixels", frames))
    return path


def plugin_available() -> bool:
    try:
        find_plugin()
    except BackendUnavailableError:
        return False
    return True


def builds(folder: str, quick: bool) -> list[tuple[str, str, str, str, str]]:
    """(model, ONNX path, precision, deform, targets) for every build of the run."""
    target_sets = QUICK_TARGET_SETS if quick else TARGET_SETS
    fr, qpmap = export("fr", folder), export("qpmap", folder)
    nr = {"tiny": (export("nr", folder, "tiny"), 32)}
    if not quick:
        nr["small"] = (export("nr", folder, "small"), 224)
    deforms = ["decomposed"] + (["plugin"] if plugin_available() else [])
    planned = [("fr", fr, precision, deform, targets) for deform in deforms for precision in ("fp32", "fp16")
               for targets in target_sets]
    for preset, (path, size) in nr.items():
        sources = {"fp32": path, "fp16": path, "int8": quantized(path, "int8", size), "fp8": quantized(path, "fp8", size)}
        for precision, source in sources.items():
            chosen = [t for t in target_sets if precision != "fp8" or all(x in FP8_TARGETS for x in t.split(","))]
            planned += [(f"nr-{preset}", source, precision, "-", targets) for targets in chosen]
    planned += [("qpmap", qpmap, precision, "-", targets) for precision in ("fp32", "fp16") for targets in target_sets]
    return planned


def run(args) -> dict:
    trt = import_flavour(RTX)
    results = {"machine": machine_info(tensorrt_rtx=trt.__version__), "settings": {"mode": "quick" if args.quick
                                                                                    else "full"}, "builds": []}
    with tempfile.TemporaryDirectory(prefix="vqa-rt-engine-build-") as folder:
        for index, (model, source, precision, deform, targets) in enumerate(builds(folder, args.quick)):
            plan = os.path.join(folder, f"plan-{index}.plan")
            options = BuildOptions(precision, targets=targets, deform="auto" if deform == "-" else deform)
            start = time.perf_counter()
            report = build_engine(source, plan, options)
            seconds = time.perf_counter() - start
            results["builds"].append({
                "model": model, "precision": precision, "deform": report.sidecar["deform"] or "-",
                "targets": targets, "seconds": round(seconds, 3), "plan_mib": round(os.path.getsize(plan) / 2**20, 2),
                "onnx_mib": round(os.path.getsize(source) / 2**20, 2), "layers": report.sidecar["layers"]["count"]})
            print(f"{model} {precision} {deform} {targets}: {seconds:.2f} s, "
                  f"{results['builds'][-1]['plan_mib']} MiB", flush=True)
            for path in (plan, plan + ".json", plan + ".report.json"):
                os.remove(path)
    results["machine"]["load_average_end"] = list(os.getloadavg())
    return results


def multi_target_ratios(builds: list[dict]) -> list[float]:
    """Per model, precision and DeformConv handling: the size of the plan for several targets over the mean size of
    its single-target plans."""
    ratios = []
    for multi in (b for b in builds if "," in b["targets"]):
        singles = [b["plan_mib"] for b in builds if "," not in b["targets"] and
                   (b["model"], b["precision"], b["deform"]) == (multi["model"], multi["precision"], multi["deform"])]
        if singles:
            ratios.append(multi["plan_mib"] / (sum(singles) / len(singles)))
    return ratios


def render_markdown(results: dict) -> str:
    m = results["machine"]
    ratios = multi_target_ratios(results["builds"])
    software = f"TensorRT for RTX {m['tensorrt_rtx']}, numpy {m['numpy']}"
    rows = [[b["model"], b["precision"], b["deform"], b["targets"].replace(",", ", "), f"{b['seconds']:.2f}",
             f"{b['plan_mib']:.1f}", f"{b['onnx_mib']:.1f}", str(b["layers"])] for b in results["builds"]]
    return "\n".join([
        "# TensorRT plan builds without a GPU (TensorRT for RTX)", "",
        f"Mode: **{results['settings']['mode']}**. Machine: {machine_line(m, software)}", "",
        "Every plan was built ahead of time on this CPU-only machine (no GPU, no CUDA driver) by "
        "`build_engine` — what `vqa-rt build-engine --target ...` runs — with the default profile. Seconds are wall "
        "time of the whole build (graph steps, parse, build, writing the plan and its sidecar); one build each, no "
        "repeats. Untrained seeded weights. None of these plans has been run on a GPU.", "",
        *table(["model", "precision", "DeformConv", "targets", "build s", "plan MiB", "ONNX MiB", "layers"], rows), "",
        f"A plan for several targets is {min(ratios):.2f}-{max(ratios):.2f}x the size of a single-target one (TensorRT "
        "for RTX compiles kernels for the actual GPU when the plan is loaded)." if ratios else "", "",
    ])


if __name__ == "__main__":
    main("engine_build", __doc__, run, render_markdown,
         {"--quick": {"action": "store_true", "help": "two target sets, NR tiny only"}})
