"""Deterministic reference/distorted clip pairs for demos and tests.

The reference is a moving scene (drifting sinusoid gratings, a panning noise texture
and two moving shapes with hard edges) rendered in RGB and stored as BT.709
limited-range YUV 4:2:0. The distorted clip degrades each reference plane for real:
JPEG re-encoding (OpenCV) and/or a Gaussian blur.
"""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

from vqa_rt.errors import InputError
from vqa_rt.runtime.checks import whole_number
from vqa_rt.runtime.frames.video import VideoFormat

DISTORTIONS = ("jpeg", "blur", "jpeg+blur", "none")
MAX_SIDE = 8192  # pixels a side of a synthetic clip (8K)
MAX_FRAMES = 10000
_KR, _KB = 0.2126, 0.0722  # BT.709


def make_test_clip(ref_path: str, dist_path: str, width: int, height: int, frames: int, *,
                   seed: int = 0, bit_depth: int = 8, distortion: str = "jpeg",
                   quality: int = 30) -> VideoFormat:
    """Write ``frames`` frames of raw yuv420p (8-bit) or yuv420p10le (10-bit) to both
    paths and return their format (25 fps, limited range). Bad arguments raise :class:`InputError` before
    anything is written."""
    for what, value in (("width", width), ("height", height)):
        whole_number(value, what, 2, MAX_SIDE)
    if width % 2 or height % 2:
        raise InputError(f"width and height must be positive and even, got {width}x{height}")
    whole_number(frames, "frames", 1, MAX_FRAMES)
    whole_number(quality, "JPEG quality", 1, 100)
    whole_number(seed, "seed", 0, 2**32 - 1)
    if bit_depth not in (8, 10):
        raise InputError(f"bit depth must be 8 or 10, got {bit_depth}")
    if distortion not in DISTORTIONS:
        raise InputError(f"unknown distortion {distortion!r} (expected one of {DISTORTIONS})")
    rng = np.random.default_rng(seed)
    pad = 64
    texture = cv2.GaussianBlur(rng.standard_normal((height + pad, width + pad), np.float32),
                               (0, 0), 1.5)
    texture *= 0.08 / texture.std()
    tint = rng.uniform(0.3, 1.0, (2, 3)).astype(np.float32)
    grid = np.mgrid[0:height, 0:width].astype(np.float32)
    scale = 1 << (bit_depth - 8)
    dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
    with open(ref_path, "wb") as ref_file, open(dist_path, "wb") as dist_file:
        for t in range(frames):
            dx, dy = (pad - abs(step * t % (2 * pad) - pad) for step in (3, 2))  # to and fro
            rgb = _scene(grid, t, texture[dy:dy + height, dx:dx + width], tint)
            for plane in _rgb_to_yuv420(rgb):
                ref_file.write(_quantize(plane, scale, dtype).tobytes())
                dist_file.write(_quantize(_degrade(plane, distortion, quality), scale,
                                          dtype).tobytes())
    pix_fmt = "yuv420p" if bit_depth == 8 else "yuv420p10le"
    return VideoFormat(width, height, bit_depth, Fraction(25), "limited", pix_fmt)


def _scene(grid: np.ndarray, t: int, texture: np.ndarray, tint: np.ndarray) -> np.ndarray:
    """RGB float32 (3, H, W) in [0, 1] for frame ``t`` on the (y, x) pixel ``grid``."""
    y, x = grid
    height, width = texture.shape
    grating = (0.18 * np.sin(2 * np.pi * (x / 37 + t / 15))
               + 0.12 * np.sin(2 * np.pi * ((x + y) / 23 - t / 11))
               + 0.10 * np.sin(2 * np.pi * (y / 61 + t / 29)))
    rgb = np.stack([0.5 + grating * w + texture for w in (1.0, 0.6, -0.8)])
    disc = (x - (0.2 + 0.02 * t) * width) ** 2 + (y - 0.4 * height) ** 2 \
        < (0.15 * min(width, height)) ** 2
    box = (abs(x - 0.6 * width) < 0.12 * width) & (abs(y - (0.3 + 0.015 * t) * height)
                                                  < 0.1 * height)
    for mask, colour in zip((disc, box), tint):
        rgb[:, mask] = colour[:, None] + texture[mask]
    return np.clip(rgb, 0.0, 1.0)


def _rgb_to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.709 limited-range Y, U, V as float 8-bit code values; chroma 2x2 averaged."""
    r, g, b = rgb
    luma = _KR * r + (1 - _KR - _KB) * g + _KB * b
    chroma = [(c - luma) / (2 * (1 - k)) for c, k in ((b, _KB), (r, _KR))]
    h, w = luma.shape
    u, v = (c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) for c in chroma)
    return 16 + 219 * luma, 128 + 224 * u, 128 + 224 * v


def _degrade(plane: np.ndarray, distortion: str, quality: int) -> np.ndarray:
    """The plane (8-bit code values) after the distortion, still in 8-bit units: the
    JPEG error measured on the 8-bit plane is added to the exact plane."""
    out = plane
    if "blur" in distortion:
        out = cv2.GaussianBlur(out, (0, 0), 1.0)
    if "jpeg" in distortion:
        codes = np.clip(np.round(out), 0, 255).astype(np.uint8)
        _, data = cv2.imencode(".jpg", codes, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = out + (cv2.imdecode(data, cv2.IMREAD_GRAYSCALE).astype(np.float32) - codes)
    return out


def _quantize(plane: np.ndarray, scale: int, dtype) -> np.ndarray:
    return np.clip(np.round(plane * scale), 0, 256 * scale - 1).astype(dtype)
