"""YUV 4:2:0 to planar RGB float32, with an optional resize to an analysis resolution.

Chroma is upsampled by bilinear interpolation (cv2 ``INTER_LINEAR``), which places each
chroma sample at the centre of its 2x2 luma block (JPEG/MPEG-1 siting). Video is
usually left-sited (MPEG-2, BT.709); the difference is a quarter-pixel chroma shift,
negligible for quality analysis.
"""

from __future__ import annotations

import cv2
import numpy as np

from vqa_rt.runtime.frames.video import Frame

MATRICES = ("bt709", "bt601")
RANGES = ("limited", "full")

_KR_KB = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}


def yuv_to_rgb(frame: Frame, matrix: str = "bt709", color_range: str = "limited",
               size: tuple[int, int] | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Convert a frame to RGB, float32 of shape (3, H, W) clipped to [0, 1] (written into ``out`` if given).

    ``size=(width, height)`` resizes the result: ``INTER_AREA`` when shrinking,
    ``INTER_LINEAR`` when enlarging.
    """
    if matrix not in _KR_KB:
        raise ValueError(f"unknown colour matrix {matrix!r} (expected one of {MATRICES})")
    if color_range not in RANGES:
        raise ValueError(f"unknown colour range {color_range!r} (expected one of {RANGES})")
    if size is not None and min(size) <= 0:
        raise ValueError(f"analysis size must be positive, got {size[0]}x{size[1]}")
    kr, kb = _KR_KB[matrix]
    kg = 1.0 - kr - kb
    y_scale, y_offset, c_scale, c_offset = _range_scales(color_range, frame.bit_depth)
    # R = Y' + cr_r Cr', G = Y' + cb_g Cb' + cr_g Cr', B = Y' + cb_b Cb'.
    cb_b, cr_r = 2 * (1 - kb), 2 * (1 - kr)
    cb_g, cr_g = -cb_b * kb / kg, -cr_r * kr / kg
    cb = (frame.u.astype(np.float32) - c_offset) * np.float32(c_scale)
    cr = (frame.v.astype(np.float32) - c_offset) * np.float32(c_scale)
    # Bilinear upsampling is linear, so the chroma terms are mixed at chroma
    # resolution and upsampled once per output channel.
    chroma_terms = (cr * np.float32(cr_r), cb * np.float32(cb_g) + cr * np.float32(cr_g),
                    cb * np.float32(cb_b))
    # Y' = Y * y_scale - y_offset * y_scale in one pass, straight to float32.
    luma = cv2.addWeighted(frame.y, y_scale, frame.y, 0.0, -y_offset * y_scale,
                           dtype=cv2.CV_32F)
    height, width = luma.shape
    out_size = (width, height) if size is None else (int(size[0]), int(size[1]))
    resize = out_size != (width, height)
    shrink = out_size[0] * out_size[1] < width * height
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    rgb = np.empty((3, out_size[1], out_size[0]), np.float32) if out is None else out
    if rgb.shape != (3, out_size[1], out_size[0]) or rgb.dtype != np.float32:
        raise ValueError(f"out must be float32 of shape (3, {out_size[1]}, {out_size[0]}), got {rgb.dtype} {rgb.shape}")
    full = np.empty_like(luma) if resize else None
    for plane, term in zip(rgb, chroma_terms):
        channel = full if resize else plane
        cv2.resize(term, (width, height), dst=channel, interpolation=cv2.INTER_LINEAR)
        cv2.add(channel, luma, dst=channel)
        np.clip(channel, 0.0, 1.0, out=channel)
        if resize:
            cv2.resize(channel, out_size, dst=plane, interpolation=interpolation)
    return rgb


def normalize(rgb: np.ndarray, mean, std) -> np.ndarray:
    """``(rgb - mean) / std`` per channel (axis -3); in place when ``rgb`` is float32."""
    rgb = np.asarray(rgb, dtype=np.float32)
    shape = (3, 1, 1)
    rgb -= np.asarray(mean, np.float32).reshape(shape)
    rgb *= 1.0 / np.asarray(std, np.float32).reshape(shape)
    return rgb


def _range_scales(color_range: str, bit_depth: int) -> tuple[float, float, float, float]:
    """(Y scale, Y offset, chroma scale, chroma offset) mapping codes to Y' in [0, 1]
    and Cb'/Cr' in [-0.5, 0.5]."""
    if color_range == "limited":
        step = 1 << (bit_depth - 8)
        return 1.0 / (219 * step), 16.0 * step, 1.0 / (224 * step), 128.0 * step
    peak = (1 << bit_depth) - 1
    return 1.0 / peak, 0.0, 1.0 / peak, float(1 << (bit_depth - 1))
