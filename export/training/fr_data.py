"""Training clips for the FR model, made here: sample photographs moved like a camera, distorted by real
encoders and processing, every distorted frame labelled by VMAF (the teacher).

- References: one clip per photograph of a split (``sample_images.SPLITS``; the split is by content), cropped
  from the photograph along a seeded pan-and-zoom path, plus seeded dead-leaves scenes for the train split;
  yuv420p, BT.709 limited range, made by ffmpeg.
- Distortions (:data:`DISTORTIONS`): x265 CRF 15-45, SVT-AV1 CRF, VVenC QP, Kvazaar QP, down/up-scaling (alone and
  with coding), Gaussian blur, sharpening, noise, and deblocking of a blocky encode: the processing the AVS data
  set includes, through imageio-ffmpeg's ffmpeg.
- Labels: per-frame VMAF (libvmaf ``vmaf_v0.6.1``) of each distorted clip against its reference.

Everything lands in one folder with a ``labels.jsonl`` line per distorted clip; a rerun skips what is there.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from vqa_rt.export.training.sample_images import SPLITS, dead_leaves, load

VMAF_MODEL = "vmaf_v0.6.1"


@dataclass(frozen=True)
class ClipSpec:
    """Size and length of every training clip."""

    width: int = 320
    height: int = 192
    frames: int = 12
    fps: int = 25


def camera_path(image: np.ndarray, spec: ClipSpec, rng: np.random.Generator) -> list[np.ndarray]:
    """``spec.frames`` RGB frames cropped from ``image`` along a seeded pan with a slow zoom (camera-like motion)."""
    height, width = image.shape[:2]
    fit = min(width / spec.width, height / spec.height)
    start_zoom = rng.uniform(1.0, max(1.0, min(2.0, fit)))  # pixels of the photograph per clip pixel
    zoom_rate = rng.uniform(-0.01, 0.01)
    centre = np.array([width / 2, height / 2]) + rng.uniform(-0.2, 0.2, 2) * [width, height]
    velocity = rng.normal(0, 2.0, 2) * start_zoom
    frames = []
    for t in range(spec.frames):
        zoom = min(start_zoom * (1 + zoom_rate) ** t, fit)
        half = np.array([spec.width, spec.height]) * zoom / 2
        x, y = np.clip(centre + velocity * t, half, [width, height] - half)
        matrix = np.array([[zoom, 0, x - half[0]], [0, zoom, y - half[1]]], np.float32)
        frames.append(cv2.warpAffine(image, matrix, (spec.width, spec.height),
                                     flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT))
    return frames


def _raw(spec: ClipSpec, pix_fmt: str = "yuv420p") -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{spec.width}x{spec.height}", "-r", str(spec.fps)]


def write_reference(ffmpeg: str, frames: list[np.ndarray], spec: ClipSpec, path: str) -> None:
    """RGB frames -> a yuv420p file (BT.709, limited range), converted by ffmpeg."""
    subprocess.run([ffmpeg, "-v", "error", "-y", *_raw(spec, "rgb24"), "-i", "-", "-vf",
                    "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p", "-f", "rawvideo", path],
                   input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames), check=True, capture_output=True)


def _codec(args: list[str], container: str, pix_fmt: str = "yuv420p", pre: str | None = None,
           post: str | None = None) -> Callable[[str, str, str, ClipSpec, str], None]:
    """Encode (after the filter ``pre``), decode back to yuv420p (through the filter ``post``)."""
    def run(ffmpeg: str, source: str, output: str, spec: ClipSpec, folder: str) -> None:
        stream = os.path.join(folder, f"stream.{container}")
        subprocess.run([ffmpeg, "-v", "error", "-y", *_raw(spec), "-i", source,
                        *(["-vf", pre] if pre else []), "-pix_fmt", pix_fmt, *args, stream],
                       check=True, capture_output=True)
        scale_back = f"scale={spec.width}:{spec.height}:flags=bicubic,format=yuv420p"
        subprocess.run([ffmpeg, "-v", "error", "-y", "-i", stream, "-vf", ",".join(filter(None, (post, scale_back))),
                        "-f", "rawvideo", output], check=True, capture_output=True)
    return run


def _filter(chain: str) -> Callable[[str, str, str, ClipSpec, str], None]:
    def run(ffmpeg: str, source: str, output: str, spec: ClipSpec, folder: str) -> None:
        subprocess.run([ffmpeg, "-v", "error", "-y", *_raw(spec), "-i", source, "-vf", f"{chain},format=yuv420p",
                        "-f", "rawvideo", output], check=True, capture_output=True)
    return run


def _x265(crf: int, **filters) -> Callable:
    return _codec(["-c:v", "libx265", "-preset", "fast", "-crf", str(crf), "-x265-params", "log-level=none"], "hevc",
                  **filters)


HALF = "scale=iw/2:ih/2:flags=bicubic"
DISTORTIONS: dict[str, Callable[[str, str, str, ClipSpec, str], None]] = {
    **{f"x265 crf{c}": _x265(c) for c in (15, 20, 25, 30, 35, 40, 45)},
    **{f"svtav1 crf{c}": _codec(["-c:v", "libsvtav1", "-preset", "10", "-crf", str(c)], "ivf")
       for c in (25, 40, 55, 63)},
    **{f"vvenc qp{q}": _codec(["-c:v", "libvvenc", "-preset", "faster", "-qp", str(q)], "266", "yuv420p10le")
       for q in (27, 37, 47)},
    **{f"kvazaar qp{q}": _codec(["-c:v", "libkvazaar", "-kvazaar-params", f"preset=ultrafast,qp={q}"], "hevc")
       for q in (22, 32, 42, 51)},
    "scale 1/2": _filter(f"{HALF},scale=iw*2:ih*2:flags=bicubic"),
    "scale 1/3": _filter("scale=iw/3:-2:flags=bicubic,scale=320:192:flags=bicubic"),
    "scale 1/2 x265 crf30": _x265(30, pre=HALF),
    "blur 1": _filter("gblur=sigma=1"),
    "blur 2.5": _filter("gblur=sigma=2.5"),
    "sharpen": _filter("unsharp=5:5:1.5:5:5:0.5"),
    "noise 8": _filter("noise=alls=8:allf=t"),
    "noise 20": _filter("noise=alls=20:allf=t"),
    "x265 crf42 deblocked": _x265(42, post="deblock=filter=strong:block=8"),
}


def vmaf_per_frame(ffmpeg: str, reference: str, distorted: str, spec: ClipSpec, folder: str) -> list[float]:
    """VMAF (``VMAF_MODEL``) of every frame of ``distorted`` against ``reference``."""
    log = os.path.join(folder, "vmaf.json")
    subprocess.run([ffmpeg, "-v", "error", *_raw(spec), "-i", distorted, *_raw(spec), "-i", reference, "-lavfi",
                    f"libvmaf=model=version={VMAF_MODEL}:log_fmt=json:log_path={log}:n_threads=2", "-f", "null", "-"],
                   check=True, capture_output=True)
    with open(log) as handle:
        return [frame["metrics"]["vmaf"] for frame in json.load(handle)["frames"]]


def references(split: str, synthetic: int, spec: ClipSpec, seed: int) -> list[tuple[str, list[np.ndarray]]]:
    """(name, RGB frames) of every reference clip of ``split``: one per photograph, plus ``synthetic`` dead-leaves."""
    rng = np.random.default_rng(seed)
    clips = [(name.split(":")[1].split(".")[0], camera_path(load(name), spec, rng)) for name in SPLITS[split]]
    for index in range(synthetic):
        scene = dead_leaves(2 * max(spec.width, spec.height), rng)
        clips.append((f"deadleaves{index:02d}", camera_path(scene, spec, rng)))
    return clips


def build(folder: str, ffmpeg: str, split: str, synthetic: int = 0, spec: ClipSpec = ClipSpec(), seed: int = 0,
          distortions: tuple[str, ...] | None = None, log: Callable[[str], None] = print) -> str:
    """Make (or complete) the labelled clips of ``split`` in ``folder`` (every distortion, or those named);
    returns the path of ``labels.jsonl``."""
    os.makedirs(folder, exist_ok=True)
    labels = os.path.join(folder, "labels.jsonl")
    done = set()
    if os.path.exists(labels):
        with open(labels) as handle:
            done = {(row["reference"], row["distortion"]) for row in map(json.loads, handle)}
    for name, frames in references(split, synthetic, spec, seed):
        reference = os.path.join(folder, f"{name}.yuv")
        if not os.path.exists(reference):
            write_reference(ffmpeg, frames, spec, reference + ".tmp")
            os.replace(reference + ".tmp", reference)
        for distortion, make in DISTORTIONS.items():
            if (name, distortion) in done or (distortions is not None and distortion not in distortions):
                continue
            distorted = os.path.join(folder, f"{name}__{distortion.replace(' ', '_').replace('/', '-')}.yuv")
            make(ffmpeg, reference, distorted, spec, folder)
            row = {"reference": name, "distortion": distortion, "reference_path": os.path.basename(reference),
                   "distorted_path": os.path.basename(distorted), "width": spec.width, "height": spec.height,
                   "frames": spec.frames, "vmaf_model": VMAF_MODEL,
                   "vmaf": vmaf_per_frame(ffmpeg, reference, distorted, spec, folder)}
            with open(labels, "a") as handle:
                handle.write(json.dumps(row) + "\n")
        log(f"{split}: {name} done")
    return labels
