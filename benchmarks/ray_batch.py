"""The cost of going distributed: ``score-batch --ray`` on a local two-node Ray cluster against the local
``score-batch --workers 2``, on the same manifest, in one run; and, on paper, what a 26,750-row run would take.

Both sides run the command a user runs (``python -m vqa_rt.cli score-batch``, a fresh process each time)
with two workers of one thread each: locally two threads of one process, on Ray two actors, one per
node, each node a ``ray start`` of one CPU on this machine (``tests/ray_local.py``). The modes take turns
round by round, in flipped order. Measured per mode: the wall time of the whole batch (rows/s), and of a
rerun with every row already in the output (the fixed cost: start-up, and for Ray the connection, the
cluster's size and the nodes' file check); the rows' own ``seconds`` column (time inside a worker). The
outputs are checked equal, row for row, every value but ``seconds``.

The engines are the shipped FR model (trained; distilled from VMAF) exported to ONNX, and VMAF.
The estimate section times, on this CPU, what a node's CPU does per frame of an AVS-like row (decoding a
1080p HEVC stream, reading a raw 1080p reference) and combines it with the measured Ray overheads and a
stated range of GPU inference times (not measured: no GPU here).

Usage: ``python benchmarks/ray_batch.py [--rows N] [--frames N] [--rounds N] [--output-dir DIR]``
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version

from common import load_average, machine_info, machine_line, main, table

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from ray_local import ENV, LocalCluster  # noqa: E402

sys.path.pop(0)

SIZE = (320, 192)  # the shipped FR model's training size
AVS_ROWS = 26_750
AVS_FRAMES = 250  # 1080p sequences of about 10 s at 25 fps (DESIGN.md: 25/30 fps; the length is assumed)
GPU_MS_PER_FRAME = (5.0, 20.0)  # assumed FR inference at 1080p on one data-centre GPU (not measured here)
WORKERS_PER_GPU = 2
CPUS_PER_WORKER = 2  # as many as decoded the HEVC stream here (ffmpeg's default threads on this machine's cores)
GPUS_PER_NODE = 8
NODES = (1, 4, 16)
DECODE_FRAMES = 24


def _make_data(folder: str, rows: int, frames: int) -> tuple[str, str]:
    from vqa_rt.export.models.checkpoint import load_shipped
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.to_onnx.onnx_export import export_onnx
    from vqa_rt.runtime.frames.synthetic import make_test_clip

    spec = get_spec("fr")
    model = os.path.join(folder, "fr.onnx")
    export_onnx(spec, load_shipped(spec), model, validate=False)
    manifest = os.path.join(folder, "manifest.csv")
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reference", "distorted", "width", "height"])
        for i in range(rows):
            make_test_clip(os.path.join(folder, "ref.yuv"), os.path.join(folder, f"d{i:03d}.yuv"), *SIZE, frames,
                           seed=7, quality=15 + (i * 60) // rows)
            writer.writerow(["ref.yuv", f"d{i:03d}.yuv", *SIZE])
    return manifest, model


def _batch(manifest: str, model: str, output: str, args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vqa_rt.cli", "score-batch", manifest, "-e", model, "-e", "vmaf",
                    "-o", output, "--threads", "1", *args], check=True, capture_output=True, env={**os.environ, **ENV})
    return time.perf_counter() - start


def _rows(path: str) -> list[dict]:
    with open(path, newline="") as handle:
        return sorted(csv.DictReader(handle), key=lambda row: row["distorted"])


def _decode_costs(folder: str) -> dict:
    """Seconds per frame, on this CPU, of decoding a 1080p HEVC stream (x265 CRF 28) through vqa-rt's ffmpeg
    reader, and of reading a raw 1080p yuv420p reference."""
    from vqa_rt.runtime.frames.ffmpeg import find_ffmpeg
    from vqa_rt.runtime.frames.sources import VideoInput
    from vqa_rt.runtime.frames.synthetic import make_test_clip

    raw, dist = os.path.join(folder, "ref1080.yuv"), os.path.join(folder, "d1080.yuv")
    make_test_clip(raw, dist, 1920, 1080, DECODE_FRAMES, seed=3, quality=60)
    hevc = os.path.join(folder, "d1080.mp4")
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s",
                    "1920x1080", "-r", "25", "-i", dist, "-c:v", "libx265", "-crf", "28", "-preset", "fast",
                    "-x265-params", "log-level=error", hevc], check=True)
    costs = {}
    for name, video in (("hevc_decode_s_per_frame", VideoInput(hevc)),
                        ("raw_read_s_per_frame", VideoInput(raw, 1920, 1080))):
        start = time.perf_counter()
        with video.open() as reader:
            count = sum(1 for _ in reader)
        costs[name] = (time.perf_counter() - start) / count
    return costs


def _estimate(fixed_ray: float, overhead_row: float, costs: dict) -> list[dict]:
    """Hours for AVS_ROWS rows of AVS_FRAMES 1080p frames on N nodes of GPUS_PER_NODE GPUs, WORKERS_PER_GPU
    workers per GPU with CPUS_PER_WORKER cores each: a worker's row takes the larger of its GPU time and its
    decoding (they overlap in the pipeline), plus the measured Ray overhead per row; the fixed cost is paid once."""
    cpu_frame = costs["hevc_decode_s_per_frame"] + costs["raw_read_s_per_frame"]
    estimates = []
    for nodes in NODES:
        workers = nodes * GPUS_PER_NODE * WORKERS_PER_GPU
        for gpu_ms in GPU_MS_PER_FRAME:
            gpu_frame = gpu_ms / 1000 * WORKERS_PER_GPU  # two workers share a GPU
            row = AVS_FRAMES * max(gpu_frame, cpu_frame) + overhead_row
            estimates.append({"nodes": nodes, "workers": workers, "gpu_ms_per_frame": gpu_ms,
                              "row_s": row, "hours": (fixed_ray + AVS_ROWS * row / workers) / 3600,
                              "bound": "GPU" if gpu_frame >= cpu_frame else "CPU decode"})
    return estimates


def run(args) -> dict:
    results = {"machine": machine_info(ray=version("ray"), onnxruntime=version("onnxruntime")), "rows": args.rows, "frames": args.frames,
               "size": list(SIZE), "rounds": args.rounds, "engines": ["fr.onnx (shipped, trained)", "vmaf"]}
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as folder:
        manifest, model = _make_data(folder, args.rows, args.frames)
        start = time.perf_counter()
        with LocalCluster(nodes=2, cpus=1) as cluster:
            results["cluster_start_s"] = time.perf_counter() - start
            modes = {"local": ["--workers", "2"], "ray": ["--ray", cluster.address]}
            runs = {mode: {"wall_s": [], "fixed_s": [], "row_seconds": []} for mode in modes}
            outputs = {}
            for round_number in range(args.rounds):
                order = list(modes) if round_number % 2 == 0 else list(modes)[::-1]
                for mode in order:
                    output = os.path.join(folder, f"{mode}{round_number}.csv")
                    runs[mode]["wall_s"].append(_batch(manifest, model, output, modes[mode]))
                    runs[mode]["fixed_s"].append(_batch(manifest, model, output, modes[mode]))
                    rows = _rows(output)
                    runs[mode]["row_seconds"].extend(float(row["seconds"]) for row in rows)
                    outputs[mode] = [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
        results["outputs_equal"] = outputs["local"] == outputs["ray"]
        for numbers in runs.values():
            wall, fixed = statistics.median(numbers["wall_s"]), statistics.median(numbers["fixed_s"])
            numbers.update(wall_median_s=wall, fixed_median_s=fixed, rows_per_s=args.rows / wall,
                           rows_per_s_after_start=args.rows / (wall - fixed),
                           row_seconds_median=statistics.median(numbers["row_seconds"]))
        results["runs"] = runs
        local, ray = runs["local"], runs["ray"]
        results["ray_over_local_rows_per_s"] = ray["rows_per_s"] / local["rows_per_s"]
        results["ray_over_local_after_start"] = ray["rows_per_s_after_start"] / local["rows_per_s_after_start"]
        overhead_row = max(0.0, 2 * ((ray["wall_median_s"] - ray["fixed_median_s"]) -
                                     (local["wall_median_s"] - local["fixed_median_s"])) / args.rows)
        results["ray_overhead_s_per_row"] = overhead_row  # worker-seconds per row: 2 workers
        results["decode"] = _decode_costs(folder)
    results["estimate"] = _estimate(ray["fixed_median_s"], overhead_row, results["decode"])
    results["machine"]["load_average_end"] = load_average()
    return results


def render(r: dict) -> str:
    m = r["machine"]
    local, ray = r["runs"]["local"], r["runs"]["ray"]
    lines = [
        "# score-batch on a local 2-node Ray cluster vs local workers",
        "",
        machine_line(m, f"Ray {m['ray']}, onnxruntime {m.get('onnxruntime', '?')}"),
        "",
        f"Manifest: {r['rows']} rows, each a {r['frames']}-frame {r['size'][0]}x{r['size'][1]} yuv420p synthetic clip "
        f"(JPEG-degraded at {r['rows']} qualities) against one reference; engines: {', '.join(r['engines'])}. "
        f"Both modes: 2 workers, 1 thread each (`--threads 1`); local `--workers 2` (threads of one process), "
        f"Ray `--ray 127.0.0.1:PORT` (2 actors on 2 `ray start` nodes of 1 CPU, started in "
        f"{r['cluster_start_s']:.1f} s, not counted). Median of {r['rounds']} rounds, modes alternating; "
        "each batch is a fresh `python -m vqa_rt.cli score-batch` process.",
        "",
        *table(["mode", "batch wall s", "rows/s", "fixed cost s (rerun, nothing to do)", "rows/s after the fixed cost",
                "median row seconds (in a worker)"],
               [[mode, f"{n['wall_median_s']:.2f}", f"{n['rows_per_s']:.2f}", f"{n['fixed_median_s']:.2f}",
                 f"{n['rows_per_s_after_start']:.2f}", f"{n['row_seconds_median']:.3f}"]
                for mode, n in (("local --workers 2", local), ("--ray (2 nodes)", ray))]),
        "",
        f"**Ray / local rows/s: {r['ray_over_local_rows_per_s']:.2f}** for the whole command; "
        f"{r['ray_over_local_after_start']:.2f} after the fixed cost. The Ray side's extra time per row "
        f"(worker-seconds: starting the actors, each loading its engines, amortised over the rows; scheduling; results to the driver) is {r['ray_overhead_s_per_row']:.3f} s. "
        f"Outputs equal row for row (every value but `seconds`): **{'yes' if r['outputs_equal'] else 'NO'}**.",
        "",
        "On one 2-core machine the Ray side also runs two raylets, the GCS and their agents on the same cores, "
        "so this is an upper bound on the cost of going distributed, not a speed-up: the point of `--ray` is "
        "more machines.",
        "",
        f"## On paper: {AVS_ROWS:,} rows (the AVS set) on N GPU nodes",
        "",
        f"Assumed per row: {AVS_FRAMES} frames of 1080p (DESIGN.md gives 25/30 fps; the length, ~10 s, is an "
        "assumption), a raw reference and an HEVC-coded distorted stream. Measured on this machine's "
        f"{m['cores']} cores (ffmpeg's default threads): decoding 1080p HEVC {r['decode']['hevc_decode_s_per_frame'] * 1000:.1f} ms/frame "
        f"through vqa-rt's ffmpeg reader, reading raw 1080p {r['decode']['raw_read_s_per_frame'] * 1000:.1f} ms/frame; "
        f"Ray's fixed cost {ray['fixed_median_s']:.1f} s and {r['ray_overhead_s_per_row']:.3f} s per row (above). "
        f"**Not measured** (no GPU here): FR inference at 1080p, taken as {GPU_MS_PER_FRAME[0]:g}-"
        f"{GPU_MS_PER_FRAME[1]:g} ms per frame per GPU. Nodes of {GPUS_PER_NODE} GPUs, {WORKERS_PER_GPU} workers "
        f"per GPU (`--gpus-per-worker {1 / WORKERS_PER_GPU:g} --cpus-per-worker {CPUS_PER_WORKER}`, so "
        f"{GPUS_PER_NODE * WORKERS_PER_GPU * CPUS_PER_WORKER} cores per node, each worker decoding as fast as this "
        "machine did); decode and inference overlap in a worker's pipeline, so a row takes the slower of the two.",
        "",
        *table(["nodes", "workers", "GPU ms/frame (assumed)", "s per row", "bound by", "hours for the set"],
               [[str(e["nodes"]), str(e["workers"]), f"{e['gpu_ms_per_frame']:g}", f"{e['row_s']:.1f}", e["bound"],
                 f"{e['hours']:.2f}"] for e in r["estimate"]]),
        "",
        "Where decoding bounds a row, more CPUs per worker or GPU decoding moves the bound; the Ray overhead "
        "per row is small beside either. Raw times are in `ray_batch.json`.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main("ray_batch", __doc__, run, render, {
        "--rows": {"type": int, "default": 32, "help": "manifest rows (default 32)"},
        "--frames": {"type": int, "default": 24, "help": "frames per row (default 24)"},
        "--rounds": {"type": int, "default": 3, "help": "rounds per mode (default 3)"},
    })
