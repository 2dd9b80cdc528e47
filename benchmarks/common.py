"""What the benchmark scripts share: the machine description, timing helpers and the result files.

The scripts run as ``python benchmarks/<name>.py``, which puts this folder on ``sys.path``,
so they import it as ``common``. :func:`machine_info` takes the library versions each script
reports; only the ONNX Runtime vs PyTorch section loads torch and onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

import vqa_rt

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SETTLE_S = 0.2  # pause before each timed call so the other backend's idle threads park
SEED = 0  # random weights, inputs and test clips


# --- machine ----------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (else what ``platform`` says, else "unknown")."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    """Total memory in GiB from ``/proc/meminfo`` (None where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages now."""
    return list(os.getloadavg())


def machine_info(**extra) -> dict:
    """CPU, cores, memory, OS, Python, the ``extra`` fields (library versions such as ``torch=torch.__version__``),
    numpy and vqa_rt versions, the current date and the load average now; set ``load_average_end`` when done."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        **extra,
        "numpy": np.__version__,
        "vqa_rt": vqa_rt.__version__,
        "load_average_start": load_average(),
    }


def _loads(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def machine_line(m: dict, software: str, load_label: str = "Load average (1/5/15 min)") -> str:
    """The machine sentence of a summary: hardware, OS, Python then ``software``, the date and the load averages."""
    return (f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM; {m['os']}; Python {m['python']}, "
            f"{software}; {m['date']}. {load_label} at start {_loads(m['load_average_start'])}, "
            f"at end {_loads(m['load_average_end'])}.")


# --- timing -----------------------------------------------------------------------------


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    """Seconds taken by ``fn(*args, **kwargs)`` (after a short settle pause) and its result."""
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def timed_progress(fn, *args, **kwargs) -> tuple[float, list[float], object]:
    """Like :func:`timed` for a call that takes a ``progress`` callback; also the seconds to each callback."""
    stamps: list[float] = []
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    out = fn(*args, progress=lambda done, total: stamps.append(time.perf_counter()), **kwargs)
    return time.perf_counter() - start, [s - start for s in stamps], out


def summary(times: list[float]) -> dict:
    """Median seconds per frame, the frames/s it implies, and the raw times."""
    median = statistics.median(times)
    return {"median_s_per_frame": median, "frames_per_s": 1.0 / median, "times_s": times}


# --- ONNX Runtime vs PyTorch eager (fr_throughput, qpmap_speed) -------------------------
#
# torch, onnxruntime and the export code are imported inside these functions, so that the
# benchmarks which do not use them (baselines_speed, realworld_set) never load them.


@dataclass(frozen=True)
class Plan:
    """What one run measures: sizes are (width, height, count)."""

    name: str
    model_sizes: tuple[tuple[int, int, int], ...]  # count: timed rounds per backend
    warmup: int  # untimed calls per backend and size
    e2e_sizes: tuple[tuple[int, int, int], ...]  # count: clip frames


def alternate(calls: dict, rounds: int, warmup: int) -> tuple[dict[str, list[float]], dict]:
    """``warmup`` untimed calls of each of ``calls`` (name: zero-argument callable), then ``rounds`` timed calls
    of each, alternating which goes first; the seconds by name and each call's last warm-up output."""
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
    return times, outputs


def compare_at(calls: dict, rounds: int, warmup: int) -> dict:
    """Warm both backends, then time ``rounds`` calls of each, alternating which goes first.

    ``calls`` maps "onnxruntime" and "pytorch" to zero-argument callables returning comparable arrays.
    """
    times, outputs = alternate(calls, rounds, warmup)
    result = {name: summary(t) for name, t in times.items()}
    result["ort_over_pytorch"] = result["onnxruntime"]["frames_per_s"] / result["pytorch"]["frames_per_s"]
    if warmup:
        result["max_abs_score_diff"] = float(np.max(np.abs(outputs["onnxruntime"] - outputs["pytorch"])))
    return result


def compare_backends(spec, model, onnx_path: str, plan: Plan, threads: int,
                     inputs: Callable[[int, int], list[np.ndarray]]) -> list[dict]:
    """The model at batch 1 on ONNX Runtime CPU and PyTorch eager, same weights and ``threads``.

    At each ``(width, height, rounds)`` of ``plan.model_sizes``, :func:`compare_at` with ``plan.warmup``
    on ``inputs(width, height)`` (one array per ``spec.input_names``), comparing the first output.
    """
    import torch

    from vqa_rt.runtime.engines.backends.onnxrt import OnnxRuntimeRunner

    torch.set_num_threads(threads)
    rows = []
    with OnnxRuntimeRunner(onnx_path, threads=threads) as runner:
        for width, height, rounds in plan.model_sizes:
            print(f"[model] {width}x{height}: {plan.warmup} warm-up + {rounds} timed rounds per backend", flush=True)
            arrays = inputs(width, height)
            feed, tensors = dict(zip(spec.input_names, arrays)), [torch.from_numpy(a) for a in arrays]

            def run_ort() -> np.ndarray:
                return runner.infer(feed)[spec.output_names[0]]

            def run_torch() -> np.ndarray:
                with torch.inference_mode():
                    out = model(*tensors)
                    return (out[0] if isinstance(out, tuple) else out).numpy()

            calls = {"onnxruntime": run_ort, "pytorch": run_torch}
            rows.append({"width": width, "height": height, "warmup": plan.warmup, "rounds": rounds,
                         **compare_at(calls, rounds, plan.warmup)})
    return rows


def run_model_benchmark(plan: Plan, kind: str, label: str, inputs: Callable[[int, int], list[np.ndarray]],
                        end_to_end: Callable[[object, str, str], list[dict]], settings: Callable[[object, float], dict],
                        assess_targets: Callable[[dict], list[dict]]) -> dict:
    """One run: the ``kind`` model with seeded random (untrained) weights, exported to ONNX in a temporary
    folder, then :func:`compare_backends` on ``inputs`` and ``end_to_end(spec, onnx_path, folder)``.

    Returns machine, settings (mode, threads, warmup, settle_s, ``settings(loaded, export_s)``, total_s),
    model, end_to_end and targets (``assess_targets(results)``).
    """
    import onnxruntime as ort
    import torch

    from vqa_rt.export.models.checkpoint import random_init
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    machine = machine_info(torch=torch.__version__, onnxruntime=ort.__version__)
    threads = os.cpu_count() or 1
    start = time.perf_counter()
    spec = get_spec(kind)
    loaded = random_init(spec, seed=SEED)
    with tempfile.TemporaryDirectory(prefix="vqa-rt-bench-") as directory:
        print(f"[export] random-init {label} model -> ONNX", flush=True)
        onnx_path = os.path.join(directory, f"{kind}.onnx")
        export_start = time.perf_counter()
        export_onnx(spec, loaded, onnx_path, validate=False)
        export_s = time.perf_counter() - export_start
        model_rows = compare_backends(spec, loaded.model, onnx_path, plan, threads, inputs)
        e2e_rows = end_to_end(spec, onnx_path, directory)
    machine["load_average_end"] = load_average()
    results = {
        "machine": machine,
        "settings": {"mode": plan.name, "threads": threads, "warmup": plan.warmup, "settle_s": SETTLE_S,
                     **settings(loaded, export_s), "total_s": None},
        "model": model_rows,
        "end_to_end": e2e_rows,
    }
    results["targets"] = assess_targets(results)
    results["settings"]["total_s"] = time.perf_counter() - start
    return results


# --- report -----------------------------------------------------------------------------


def row_at(rows: list[dict], size: tuple[int, int]) -> dict | None:
    """The row measured at ``size`` (width, height), or None."""
    return next((r for r in rows if (r["width"], r["height"]) == size), None)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def model_markdown(title: str, results: dict, about: str, heading: str, header: list[str],
                   row: Callable[[dict, dict, dict], list[str]]) -> list[str]:
    """The start of an ORT-vs-PyTorch summary: ``title``, mode and machine, ``about`` (the model), then the
    batch-1 table under ``heading`` with ``row(r, ort, pytorch)`` per measured size, and how it was timed."""
    m = results["machine"]
    software = f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, numpy {m['numpy']}"
    return [f"# {title}", "", f"Mode: **{results['settings']['mode']}**. Machine: {machine_line(m, software)}", "",
            about, "", f"## {heading}", "",
            *table(header, [row(r, r["onnxruntime"], r["pytorch"]) for r in results["model"]]), "",
            "Medians of the timed rounds (warm-up excluded); the backends alternate round by round.", ""]


def targets_markdown(results: dict, heading: str, key: str, digits: int, quick_note: str, name: str) -> list[str]:
    """The closing Markdown lines: the targets table (each target's ``key`` value with ``digits`` decimals, the
    column named after ``key``), ``quick_note`` in quick mode, and where the raw times are (``name``.json)."""
    verdicts = {True: "yes", False: "**no**", None: "not measured"}
    rows = [[t["target"], "n/a" if t[key] is None else f"{t[key]:.{digits}f}", verdicts[t["met"]]]
            for t in results["targets"]]
    lines = ["", f"## {heading}", "", *table(["target", key.replace("_", " "), "met"], rows)]
    if results["settings"]["mode"] == "quick":
        lines += ["", quick_note]
    return lines + ["", "Single run; background load affects the numbers (see the load averages above)."
                    f" All raw times are in `{name}.json`.", ""]


def write_results(directory: str, name: str, results: dict, markdown: str) -> list[str]:
    """Write ``results`` to ``name``.json and ``markdown`` to ``name``.md in ``directory``; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, f"{name}.json"), os.path.join(directory, f"{name}.md")]
    with open(paths[0], "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    with open(paths[1], "w") as f:
        f.write(markdown)
    return paths


def main(name: str, doc: str, run: Callable[[argparse.Namespace], dict], render_markdown: Callable[[dict], str],
         options: dict[str, dict]) -> None:
    """A benchmark's command line: ``options`` (flag: ``add_argument`` keywords) and ``--output-dir``; runs
    ``run(args)``, writes ``name``.json and .md, prints their paths and the summary."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    for flag, keywords in options.items():
        parser.add_argument(flag, **keywords)
    parser.add_argument("--output-dir", default=RESULTS_DIR,
                        help=f"where to write {name}.json and .md (default: benchmarks/results)")
    args = parser.parse_args()
    results = run(args)
    markdown = render_markdown(results)
    for path in write_results(args.output_dir, name, results, markdown):
        print(f"wrote {path}")
    print(markdown)
