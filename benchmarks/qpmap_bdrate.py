"""QP maps in a real encoder: Bjøntegaard deltas of Kvazaar with vqa-rt's maps against Kvazaar without.

Every image of a split (default ``test``: photographs never trained or tuned on, see
``vqa_rt.export.training.sample_images``) is cropped to whole 16x16 blocks, converted to yuv420p (BT.709,
limited range, by ffmpeg) and intra-coded at QP 22/27/32/37:

- Kvazaar (ffmpeg's libkvazaar, ``preset=medium,gop=0``) without a map: the anchor;
- Kvazaar with ``roi=`` maps written by ``vqa_rt.write_qp_maps`` (the code path of ``vqa-rt qpmap``) at the same
  base QP, for each variant: method (activity, or the QS model), grid (16, 32, 64 pixels), slope (1.0, 1.2);
- VVenC (ffmpeg's libvvenc, 10-bit, ``preset=faster``) with ``-qpa 0`` (its anchor) and ``-qpa 1``, its own
  perceptual QP adaptation, as a reference point from another encoder.

Rate: bits of the bitstream. Quality of the decoded luma against the source luma: PSNR-Y and MS-SSIM-Y
(vqa-rt's, the libvmaf definitions) and VMAF (libvmaf ``vmaf_v0.6.1``). BD-rate per image with
``vqa_rt.runtime.evaluation.bdrate`` (the ``bjontegaard`` package; pchip and cubic), then the mean over the
images; MS-SSIM also on the dB scale, -10 log10(1 - MS-SSIM).

Usage: ``python benchmarks/qpmap_bdrate.py [--engine qpmap.onnx] [--split test] [--quick] [--output-dir DIR]``
(without ``--engine`` the model is the shipped one, exported to a temporary folder).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import tempfile
import time

import cv2
import numpy as np
from common import machine_info, machine_line, main, table

from vqa_rt.export.training.sample_images import SPLITS, load
from vqa_rt.runtime.evaluation.bdrate import bd_deltas
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.pipeline.qpmap import write_qp_maps
from vqa_rt.runtime.qpmaps.conversion import PAPER_BASE_QPS, QPConversion
from vqa_rt.runtime.scorers.baselines.metrics import ms_ssim, psnr, to_8bit_scale
from vqa_rt.runtime.scorers.baselines.vmaf import find_vmaf_ffmpeg

KVAZAAR = "preset=medium,gop=0"
VVENC_PRESET = "faster"
METRICS = ("psnr_y", "ms_ssim_y", "vmaf")
VARIANTS = {  # name: (method, grid, slope)
    "activity g64": ("activity", 64, 1.0),
    "activity g32": ("activity", 32, 1.0),
    "activity g16": ("activity", 16, 1.0),
    "activity g64 s1.2": ("activity", 64, 1.2),
    "model g64": ("model", 64, 1.0),
    "model g32": ("model", 32, 1.0),
    "model g16": ("model", 16, 1.0),
    "model g64 s1.2": ("model", 64, 1.2),
}
QUICK_VARIANTS = ("activity g64", "model g64")


def _run(command: list[str]) -> bytes:
    return subprocess.run(command, check=True, capture_output=True).stdout


def prepare(ffmpeg: str, name: str, folder: str) -> tuple[str, int, int]:
    """The image cropped to whole 16x16 blocks as a yuv420p file: (path, width, height)."""
    rgb = load(name)
    height, width = (rgb.shape[0] // 16) * 16, (rgb.shape[1] // 16) * 16
    png = os.path.join(folder, "source.png")
    cv2.imwrite(png, cv2.cvtColor(np.ascontiguousarray(rgb[:height, :width]), cv2.COLOR_RGB2BGR))
    yuv = os.path.join(folder, f"{name.split(':')[1].split('.')[0]}.yuv")
    _run([ffmpeg, "-v", "error", "-y", "-i", png, "-vf",
          "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p", "-f", "rawvideo", yuv])
    return yuv, width, height


def _raw_input(width: int, height: int, path: str, pix_fmt: str = "yuv420p") -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{width}x{height}", "-i", path]


def encode(ffmpeg: str, yuv: str, width: int, height: int, qp: int, folder: str, roi: str | None = None,
           qpa: int | None = None) -> tuple[int, str]:
    """Intra-code the image with Kvazaar (``roi``: its map) or, with ``qpa`` set, VVenC: (bits, decoded yuv)."""
    stream = os.path.join(folder, "stream.bit")
    if qpa is None:
        params = f"{KVAZAAR},qp={qp}" + (f",roi={roi}" if roi else "")
        _run([ffmpeg, "-v", "error", "-y", *_raw_input(width, height, yuv), "-c:v", "libkvazaar",
              "-kvazaar-params", params, "-f", "hevc", stream])
    else:
        _run([ffmpeg, "-v", "error", "-y", *_raw_input(width, height, yuv), "-pix_fmt", "yuv420p10le",
              "-c:v", "libvvenc", "-preset", VVENC_PRESET, "-qp", str(qp), "-qpa", str(qpa), "-f", "vvc", stream])
    decoded = os.path.join(folder, "decoded.yuv")
    _run([ffmpeg, "-v", "error", "-y", "-i", stream, "-pix_fmt", "yuv420p", "-f", "rawvideo", decoded])
    return os.path.getsize(stream) * 8, decoded


def _luma(path: str, width: int, height: int) -> np.ndarray:
    return np.fromfile(path, np.uint8, width * height).reshape(height, width)


def quality(vmaf_ffmpeg: str, source: str, decoded: str, width: int, height: int, folder: str) -> dict:
    """PSNR-Y, MS-SSIM-Y and VMAF of the decoded image against the source."""
    ref, dist = _luma(source, width, height), _luma(decoded, width, height)
    log = os.path.join(folder, "vmaf.json")
    _run([vmaf_ffmpeg, "-v", "error", *_raw_input(width, height, decoded), *_raw_input(width, height, source),
          "-lavfi", f"libvmaf=model=version=vmaf_v0.6.1:log_fmt=json:log_path={log}", "-f", "null", "-"])
    with open(log) as handle:
        vmaf = json.load(handle)["pooled_metrics"]["vmaf"]["mean"]
    return {"psnr_y": psnr(ref, dist, 8), "ms_ssim_y": ms_ssim(to_8bit_scale(ref, 8), to_8bit_scale(dist, 8)),
            "vmaf": vmaf}


def roi_map(yuv: str, width: int, height: int, variant: tuple[str, int, float], qp: int, engine: str | None,
            folder: str) -> tuple[str, float]:
    """The Kvazaar ROI text file of one variant at base QP ``qp``, and the seconds it took."""
    method, grid, slope = variant
    path = os.path.join(folder, "roi.txt")
    started = time.perf_counter()
    write_qp_maps(VideoInput(yuv, width, height), path, "kvazaar", engine if method == "model" else None,
                  method=method, conversion=QPConversion(base_qp=qp, grid=grid, slope=slope), threads=2)
    return path, time.perf_counter() - started


def shipped_engine(folder: str) -> str:
    """The shipped QS weights exported to ONNX (what ``vqa-rt export qpmap`` writes without a checkpoint)."""
    path = os.path.join(folder, "qpmap.onnx")
    _run(["vqa-rt", "export", "qpmap", "-o", path])
    return path


def _write_points(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def deltas(points: list[dict], anchor: str, test: str, folder: str) -> dict:
    """Mean (over images) BD-rate and BD-quality of ``test`` against ``anchor``, per metric and interpolation."""
    files = []
    for name in (anchor, test):
        files.append(os.path.join(folder, f"{len(files)}.csv"))
        _write_points([{k: p[k] for k in ("image", "bits", *METRICS)} for p in points if p["variant"] == name],
                      files[-1])
    out = {}
    for method in ("pchip", "cubic"):
        rows = bd_deltas(files[0], files[1], rate="bits", metrics=list(METRICS), group="image", method=method)
        out[method] = {d.metric: {"bd_rate_percent": d.bd_rate_percent, "bd_quality": d.bd_quality,
                                  **({"per_image": {r.group: r.bd_rate_percent for r in rows
                                                    if r.metric == d.metric and r.group != "mean"}}
                                     if method == "pchip" else {})}
                       for d in rows if d.group == "mean"}
    return out


def run(args) -> dict:
    ffmpeg = vmaf_ffmpeg = find_vmaf_ffmpeg()
    images = SPLITS[args.split][:2] if args.quick else SPLITS[args.split]
    variants = {k: VARIANTS[k] for k in (QUICK_VARIANTS if args.quick else VARIANTS)}
    info = machine_info()
    points, map_seconds = [], []
    with tempfile.TemporaryDirectory() as folder:
        engine = args.engine or shipped_engine(folder)
        for name in images:
            yuv, width, height = prepare(ffmpeg, name, folder)
            for qp in PAPER_BASE_QPS:
                runs = [("kvazaar", None, None)] + [(v, k, None) for v, k in variants.items()]
                runs += [("vvenc qpa0", None, 0), ("vvenc qpa1", None, 1)]
                for label, variant, qpa in runs:
                    roi = None
                    if variant is not None:
                        roi, seconds = roi_map(yuv, width, height, variant, qp, engine, folder)
                        map_seconds.append(seconds)
                    bits, decoded = encode(ffmpeg, yuv, width, height, qp, folder, roi, qpa)
                    points.append({"image": name, "variant": label, "qp": qp, "width": width, "height": height,
                                   "bits": bits, "bpp": bits / (width * height),
                                   **quality(vmaf_ffmpeg, yuv, decoded, width, height, folder)})
            print(f"{name}: done", flush=True)
        results = {variant: deltas(points, "kvazaar", variant, folder) for variant in variants}
        results["vvenc qpa1"] = deltas(points, "vvenc qpa0", "vvenc qpa1", folder)
    info["load_average_end"] = os.getloadavg()
    encoders = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {"machine": info, "ffmpeg": encoders, "split": args.split, "images": list(images),
            "engine": args.engine or "shipped weights", "kvazaar_params": KVAZAAR, "vvenc_preset": VVENC_PRESET,
            "qps": list(PAPER_BASE_QPS), "deltas": results, "points": points,
            "map_seconds_median": float(np.median(map_seconds)) if map_seconds else None}


def render(results: dict) -> str:
    m = results["machine"]
    lines = ["# QP maps in a real encoder: Bjøntegaard deltas", "",
             machine_line(m, results["ffmpeg"]), "",
             f"Images ({results['split']} split, never trained or tuned on): "
             + ", ".join(results["images"]) + f". Intra, QP {'/'.join(map(str, results['qps']))}; "
             f"Kvazaar `{results['kvazaar_params']}` through ffmpeg, anchor: Kvazaar without a map; VVenC "
             f"`-preset {results['vvenc_preset']}`, anchor: VVenC `-qpa 0`. QS model: {results['engine']}. "
             "BD-rate: mean over the images of each image's BD-rate (negative: fewer bits for the same quality).",
             ""]
    for method in ("pchip", "cubic"):
        lines += [f"## BD-rate, {method} interpolation", ""]
        rows = []
        for variant, by_method in results["deltas"].items():
            d = by_method[method]
            rows.append([variant] + [f"{d[k]['bd_rate_percent']:+.2f} %" for k in
                                     ("psnr_y", "ms_ssim_y (dB)", "ms_ssim_y", "vmaf")])
        lines += table(["method (anchor)", "PSNR-Y", "MS-SSIM-Y (dB)", "MS-SSIM-Y", "VMAF"], rows) + [""]
    lines += ["Per image (pchip, MS-SSIM-Y dB scale):", ""]
    names = results["images"]
    rows = [[variant] + [f"{by_method['pchip']['ms_ssim_y (dB)']['per_image'][n]:+.1f}" for n in names]
            for variant, by_method in results["deltas"].items()]
    lines += table(["method"] + [n.split(":")[1].split(".")[0] for n in names], rows)
    lines += ["", f"Median time to write one map (decode, model or activity, conversion): "
              f"{results['map_seconds_median'] * 1000:.0f} ms. All rate points are in `qpmap_bdrate.json`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main("qpmap_bdrate", __doc__, run, render, {
        "--engine": {"default": None, "help": "QP-map ONNX (default: the shipped weights, exported)"},
        "--split": {"default": "test", "choices": list(SPLITS), "help": "which images (default: test)"},
        "--quick": {"action": "store_true", "help": "two images and two variants: a smoke run"},
    })
