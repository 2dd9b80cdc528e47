"""What every baseline checks and does to frames before measuring them."""

from __future__ import annotations

import cv2
import numpy as np

from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.video import VideoFormat


def measured_geometry(engine: str, analysis_size: tuple[int, int] | None,
                      formats: tuple[VideoFormat, VideoFormat], min_size: int) -> tuple[int, int, int]:
    """(width, height, bit depth) the metric sees: the analysis size, else the native one.

    Both videos must have the same bit depth, and the frames at least ``min_size`` pixels a side.
    """
    ref, dist = formats
    if ref.bit_depth != dist.bit_depth:
        raise InputError(f"{engine}: reference is {ref.bit_depth}-bit but distorted is {dist.bit_depth}-bit;"
                         " baselines compare samples of the same bit depth")
    width, height = analysis_size or (ref.width, ref.height)
    if min(width, height) < min_size:
        raise InputError(f"{engine}: frames of {width}x{height} are too small; "
                         f"it needs at least {min_size} pixels a side")
    return width, height, ref.bit_depth


def resized(plane: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """``plane`` area-resampled to ``size`` (width, height), or unchanged when None or already that size."""
    if size is None or (plane.shape[1], plane.shape[0]) == size:
        return plane
    return cv2.resize(plane, size, interpolation=cv2.INTER_AREA)
