"""Baseline metric throughput at 1920x1080 on the CPU: PSNR, SSIM, MS-SSIM and VMAF.

One run measures, on a synthetic raw yuv420p clip (``make_test_clip``):

1. ``score(engine, ...)`` end to end, the code path of ``vqa-rt score --engine``:
   reading, the prefetch thread, the metric (for VMAF: streaming the frames to
   ffmpeg through pipes, libvmaf, reading its log);
2. for PSNR, SSIM and MS-SSIM, the metric alone on luma planes already in memory;
3. for VMAF, ffmpeg's libvmaf filter reading the same raw files itself.

Each measurement is repeated ``--rounds`` times, engines taking turns; the median is
reported. It writes ``baselines_speed.json`` (all times) and ``baselines_speed.md``
and asserts nothing about timing.

Usage: ``python benchmarks/baselines_speed.py [--frames N] [--rounds N] [--output-dir DIR]``
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time

import cv2
from common import load_average, machine_info, machine_line, main, table

from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.pipeline.score import score
from vqa_rt.runtime.scorers.baselines.luma import LUMA_METRICS
from vqa_rt.runtime.scorers.baselines.vmaf import MODEL, find_vmaf_ffmpeg

WIDTH, HEIGHT = 1920, 1080
ENGINES = ("psnr", "ssim", "ms-ssim", "vmaf")


def _lumas(video: VideoInput) -> list:
    with video.open() as reader:
        return [frame.y.copy() for frame in reader]


def time_score(engine: str, ref: VideoInput, dist: VideoInput) -> float:
    start = time.perf_counter()
    result = score(engine, ref, dist)
    assert result["complete"]
    return time.perf_counter() - start


def time_metric(engine: str, refs: list, dists: list) -> float:
    """Seconds for the metric alone over every frame pair (inputs decoded beforehand)."""
    spec = LUMA_METRICS[engine]
    prepared = [(spec.prepare(r, 8), spec.prepare(d, 8)) for r, d in zip(refs, dists)]
    start = time.perf_counter()
    for r, d in prepared:
        spec.measure(r, d, 8)
    return time.perf_counter() - start


def time_ffmpeg_vmaf(ffmpeg: str, ref: VideoInput, dist: VideoInput, threads: int) -> float:
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{WIDTH}x{HEIGHT}"]
    command = [ffmpeg, "-nostdin", "-v", "error", *raw, "-i", dist.path, *raw, "-i", ref.path, "-lavfi",
               f"[0:v][1:v]libvmaf=model=version={MODEL}:n_threads={threads}", "-f", "null", "-"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def _ffmpeg_version(ffmpeg: str) -> str:
    first = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    return first.split(" Copyright")[0]


def run(frames: int, rounds: int) -> dict:
    ffmpeg = find_vmaf_ffmpeg()
    machine = machine_info(opencv=cv2.__version__, ffmpeg=_ffmpeg_version(ffmpeg), opencv_threads=cv2.getNumThreads())
    threads = os.cpu_count() or 1
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="vqa-rt-baselines-") as folder:
        ref = VideoInput(os.path.join(folder, "ref.yuv"), WIDTH, HEIGHT)
        dist = VideoInput(os.path.join(folder, "dist.yuv"), WIDTH, HEIGHT)
        make_test_clip(ref.path, dist.path, WIDTH, HEIGHT, frames, seed=0, quality=30)
        refs, dists = _lumas(ref), _lumas(dist)
        for engine in ENGINES:  # warm-up: imports, ffmpeg's first start, page cache
            score(engine, ref, dist)
        for _ in range(rounds):
            for engine in ENGINES:
                times.setdefault(f"score/{engine}", []).append(time_score(engine, ref, dist))
                if engine in LUMA_METRICS:
                    times.setdefault(f"metric/{engine}", []).append(time_metric(engine, refs, dists))
            times.setdefault("ffmpeg-files/vmaf", []).append(time_ffmpeg_vmaf(ffmpeg, ref, dist, threads))
    machine["load_average_end"] = load_average()
    rows = []
    for key, values in times.items():
        path, engine = key.split("/")
        median = statistics.median(values)
        rows.append({"engine": engine, "path": path, "seconds": values, "median_s": median,
                     "frames_per_s": frames / median})
    return {"machine": machine, "settings": {"width": WIDTH, "height": HEIGHT, "frames": frames, "rounds": rounds,
                                             "vmaf_threads": threads, "vmaf_model": MODEL}, "results": rows}


PATHS = {
    "score": "`score()` end to end (read, prefetch, metric)",
    "metric": "metric alone on decoded luma",
    "ffmpeg-files": "ffmpeg libvmaf reading the raw files itself",
}


def render_markdown(results: dict) -> str:
    m, s = results["machine"], results["settings"]
    software = f"numpy {m['numpy']}, OpenCV {m['opencv']} ({m['opencv_threads']} threads); {m['ffmpeg']}"
    lines = [
        "# Baseline metric throughput (CPU)", "",
        f"Machine: {machine_line(m, software, load_label='Load average')}", "",
        f"Clip: synthetic {s['width']}x{s['height']} yuv420p, {s['frames']} frames (JPEG-degraded copy). "
        f"Median of {s['rounds']} rounds after one warm-up; engines take turns. VMAF: {s['vmaf_model']}, "
        f"libvmaf n_threads={s['vmaf_threads']}.", "",
    ]
    rows = sorted(results["results"], key=lambda r: (ENGINES.index(r["engine"]), list(PATHS).index(r["path"])))
    lines += table(["engine", "what is timed", "s per clip", "frames/s"],
                   [[r["engine"], PATHS[r["path"]], f"{r['median_s']:.3f}", f"{r['frames_per_s']:.1f}"] for r in rows])
    lines += ["", "Single run on a shared machine; raw times are in `baselines_speed.json`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main("baselines_speed", __doc__, lambda args: run(args.frames, args.rounds), render_markdown,
         {"--frames": {"type": int, "default": 24}, "--rounds": {"type": int, "default": 3}})
