"""The one-pass pipeline (``vqa-rt run``) and the warm server (``vqa-rt serve``).

One run, three sections:

1. **Fan-out**: FR (every frame) + NR (1 frame per second) + QP-map model (every frame) in one
   :func:`~vqa_rt.runtime.pipeline.job.run_job` call vs the slowest engine alone (FR) through the same
   call, on the same clip, rounds alternating. Frames/s = frames read / wall time.
2. **Memory**: RSS of this process every 250 frames over a 10,000-frame stream (FR + QP-map
   model every frame, NR at 1 frame per second; source and distorted fed through FIFOs by
   writer threads, so no file holds the stream).
3. **Time to first score**: a job's first per-frame result from a warm ``vqa-rt serve``
   (socket connect to first line) vs a cold ``vqa-rt run --jsonl -`` (process start to
   first line), alternating.

Models: seeded random (**untrained**) FR, QP-map and ``small`` NR models; speed does not
depend on the weights. Writes ``pipeline.json`` and ``pipeline.md``; asserts nothing.

Usage: ``python benchmarks/pipeline.py [--quick] [--output-dir DIR]``
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from common import SEED, load_average, machine_info, machine_line, main, table

from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.pipeline.job import JobEngines, run_job


@dataclass(frozen=True)
class Plan:
    name: str
    size: tuple[int, int]
    frames: int  # clip frames for the fan-out and first-score sections
    rounds: int
    stream_frames: int
    stream_size: tuple[int, int]
    first_score_reps: int
    nr_preset: str


FULL = Plan("full", (640, 360), 48, 2, 10_000, (64, 64), 5, "small")
QUICK = Plan("quick", (128, 96), 12, 1, 500, (64, 64), 2, "tiny")
FPS = 24


def export_models(folder: str, nr_preset: str) -> dict[str, str]:
    from vqa_rt.export.models.checkpoint import random_init
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    paths = {}
    for kind, preset in (("fr", None), ("qpmap", None), ("nr", nr_preset)):
        spec = get_spec(kind)
        loaded = random_init(spec, seed=SEED, config=spec.config_from_preset(preset) if preset else None)
        paths[kind] = os.path.join(folder, f"{kind}.onnx")
        export_onnx(spec, loaded, paths[kind], validate=False)
    return paths


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def fan_out(plan: Plan, models: dict[str, str], clip: dict[str, VideoInput]) -> dict:
    """Section 1: all three engines in one run vs FR alone, rounds alternating."""
    setups = {"fr alone": JobEngines(fr=models["fr"]),
              "fr + nr + qpmap": JobEngines(fr=models["fr"], nr=models["nr"], qpmap=models["qpmap"])}
    run_job(setups["fr + nr + qpmap"], clip)  # warm-up: file caches, first-session costs
    walls: dict[str, list[float]] = {name: [] for name in setups}
    engines_fps: dict[str, dict] = {}
    for round_index in range(plan.rounds):
        order = list(setups) if round_index % 2 == 0 else list(reversed(setups))
        for name in order:
            time.sleep(0.5)
            start = time.perf_counter()
            summary = run_job(setups[name], clip)
            walls[name].append(time.perf_counter() - start)
            engines_fps[name] = {n: e["frames"] for n, e in summary["engines"].items()}
    fps = {name: plan.frames / statistics.median(times) for name, times in walls.items()}
    return {"wall_s": walls, "frames_per_s": fps, "engine_frames": engines_fps,
            "ratio": fps["fr + nr + qpmap"] / fps["fr alone"]}


def _feed(path: str, frame: bytes, count: int) -> threading.Thread:
    def write() -> None:
        with open(path, "wb") as fifo:
            for _ in range(count):
                fifo.write(frame)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def memory(plan: Plan, models: dict[str, str], folder: str) -> dict:
    """Section 2: RSS every 250 frames over a long stream from FIFOs."""
    width, height = plan.stream_size
    ref_file, dist_file = os.path.join(folder, "s_ref.yuv"), os.path.join(folder, "s_dist.yuv")
    make_test_clip(ref_file, dist_file, width, height, 1, seed=SEED)
    fifos = {role: os.path.join(folder, f"{role}.fifo") for role in ("reference", "distorted")}
    writers = []
    for role, source in (("reference", ref_file), ("distorted", dist_file)):
        os.mkfifo(fifos[role])
        writers.append(_feed(fifos[role], open(source, "rb").read(), plan.stream_frames))
    samples: list[tuple[int, float]] = [(0, rss_mib())]

    def on_frame(line: dict) -> None:
        if (line["frameNum"] + 1) % 250 == 0:
            samples.append((line["frameNum"] + 1, rss_mib()))

    start = time.perf_counter()
    summary = run_job(JobEngines(fr=models["fr"], nr=models["nr"], qpmap=models["qpmap"]),
                      {role: VideoInput(path, width, height, fps=FPS) for role, path in fifos.items()},
                      on_frame=on_frame)
    seconds = time.perf_counter() - start
    for writer in writers:
        writer.join()
    after_warmup = [rss for frame, rss in samples if frame >= 1000]
    return {"frames": plan.stream_frames, "size": f"{width}x{height}", "seconds": seconds,
            "engine_frames": {n: e["frames"] for n, e in summary["engines"].items()},
            "rss_mib": samples, "rss_after_1000_frames": {"min": min(after_warmup), "max": max(after_warmup),
                                                          "last": after_warmup[-1]} if after_warmup else None}


def first_score(plan: Plan, models: dict[str, str], clip: dict[str, VideoInput], folder: str) -> dict:
    """Section 3: time to the first per-frame line, warm server vs cold CLI."""
    from vqa_rt.runtime.serve.client import submit

    width, height = plan.size
    socket_path = os.path.join(tempfile.mkdtemp(prefix="vqa-bench-"), "s.sock")
    server = subprocess.Popen([sys.executable, "-m", "vqa_rt.cli", "serve", "--socket", socket_path,
                               "--fr", models["fr"]], stderr=subprocess.PIPE)
    server.stderr.readline()  # "listening on ..."
    size = width * height * 3 // 2
    ref, dist = (open(clip[r].path, "rb").read() for r in ("reference", "distorted"))
    payloads = [ref[i * size:(i + 1) * size] + dist[i * size:(i + 1) * size] for i in range(plan.frames)]
    job = {"engines": ["fr"], "width": width, "height": height}
    cold_cmd = [sys.executable, "-m", "vqa_rt.cli", "run", "--source", clip["reference"].path, "--distorted",
                clip["distorted"].path, "-w", str(width), "-h", str(height), "--fr", models["fr"], "--jsonl", "-"]
    warm, cold = [], []
    try:
        for _ in range(plan.first_score_reps):
            time.sleep(0.5)
            stamps: list[float] = []
            start = time.perf_counter()
            submit(socket_path, job, payloads, on_line=lambda _: stamps.append(time.perf_counter()))
            warm.append(stamps[0] - start)
            time.sleep(0.5)
            start = time.perf_counter()
            process = subprocess.Popen(cold_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            process.stdout.readline()
            cold.append(time.perf_counter() - start)
            process.stdout.read()
            process.wait()
    finally:
        server.terminate()
        server.wait(30)
    return {"warm_server_s": warm, "cold_cli_s": cold, "median_warm_s": statistics.median(warm),
            "median_cold_s": statistics.median(cold), "cold_over_warm": statistics.median(cold) / statistics.median(warm)}


def run(plan: Plan) -> dict:
    import onnxruntime as ort

    machine = machine_info(onnxruntime=ort.__version__)
    width, height = plan.size
    with tempfile.TemporaryDirectory(prefix="vqa-rt-pipe-") as folder:
        print("[export] FR, QP-map, NR models (untrained)", flush=True)
        models = export_models(folder, plan.nr_preset)
        ref, dist = os.path.join(folder, "ref.yuv"), os.path.join(folder, "dist.yuv")
        make_test_clip(ref, dist, width, height, plan.frames, seed=SEED)
        clip = {"reference": VideoInput(ref, width, height, fps=FPS), "distorted": VideoInput(dist, width, height, fps=FPS)}
        print("[1/3] fan-out vs FR alone", flush=True)
        section1 = fan_out(plan, models, clip)
        print("[2/3] memory over a long stream", flush=True)
        section2 = memory(plan, models, folder)
        print("[3/3] time to first score", flush=True)
        section3 = first_score(plan, models, clip, folder)
    machine["load_average_end"] = load_average()
    return {"machine": machine,
            "settings": {"mode": plan.name, "size": f"{width}x{height}", "frames": plan.frames, "fps": FPS,
                         "rounds": plan.rounds, "nr_preset": plan.nr_preset, "threads": "ONNX Runtime default",
                         "weights": f"seeded random init (seed {SEED}), UNTRAINED"},
            "fan_out": section1, "memory": section2, "first_score": section3}


def render_markdown(results: dict) -> str:
    m, s = results["machine"], results["settings"]
    fan, mem, first = results["fan_out"], results["memory"], results["first_score"]
    steady = mem["rss_after_1000_frames"]
    rss_rows = [[str(frame), f"{rss:.0f}"] for frame, rss in mem["rss_mib"][:: max(1, len(mem["rss_mib"]) // 10)]]
    return "\n".join([
        "# Pipeline: one pass over three engines, memory, warm server", "",
        f"Mode: **{s['mode']}**. Machine: {machine_line(m, 'onnxruntime ' + m['onnxruntime'])}", "",
        f"Models: FR (default config), QP-map (default), NR `{s['nr_preset']}`, all with {s['weights']}. ONNX Runtime "
        "CPU, default threads per engine (every engine thread pool on the same cores).", "",
        f"## All three engines in one run vs the slowest alone ({s['size']}, {s['frames']} frames at {s['fps']} fps)", "",
        *table(["run", "frames/s (median)", "engine frames"],
               [[name, f"{fps:.2f}", str(fan["engine_frames"][name])] for name, fps in fan["frames_per_s"].items()]),
        "", f"Ratio (three engines / FR alone): **{fan['ratio']:.2f}** (target ≥ 0.9). NR scores 1 frame per second, "
            "the QP-map model every frame, FR every frame; on this 2-core machine the engines share the same cores, "
            "so the ratio is bounded by the extra work (QP map + NR) relative to FR.", "",
        f"## Memory over a {mem['frames']}-frame stream ({mem['size']}, FIFOs)", "",
        f"{mem['seconds']:.0f} s, engine frames {mem['engine_frames']}. RSS after the first 1000 frames: "
        + (f"min {steady['min']:.0f} MiB, max {steady['max']:.0f} MiB, last {steady['last']:.0f} MiB." if steady else "n/a"),
        "", *table(["frames read", "RSS MiB"], rss_rows), "",
        "## Time to first score", "",
        *table(["path", "median s", "all runs (s)"],
               [["warm `vqa-rt serve` (connect → first line)", f"{first['median_warm_s']:.3f}",
                 ", ".join(f"{t:.3f}" for t in first["warm_server_s"])],
                ["cold `vqa-rt run --jsonl -` (process start → first line)", f"{first['median_cold_s']:.3f}",
                 ", ".join(f"{t:.3f}" for t in first["cold_cli_s"])]]),
        "", f"Cold / warm: **{first['cold_over_warm']:.1f}×**. Single run; every number is in `pipeline.json`.", "",
    ])


if __name__ == "__main__":
    main("pipeline", __doc__, lambda args: run(QUICK if args.quick else FULL), render_markdown,
         {"--quick": {"action": "store_true", "help": "small sizes, short stream: a smoke run"}})
