"""PSNR, SSIM and MS-SSIM of the luma plane as frame scorers (NumPy and OpenCV on the CPU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.selection import FramePair
from vqa_rt.runtime.frames.video import VideoFormat
from vqa_rt.runtime.scorers.base import FrameScorer
from vqa_rt.runtime.scorers.baselines import metrics
from vqa_rt.runtime.scorers.baselines.geometry import measured_geometry, resized
from vqa_rt.runtime.scorers.baselines.shared_reference import SharedReference


@dataclass(frozen=True)
class LumaMetric:
    """One luma metric: how samples are prepared, what it needs of the reference plane alone, how a
    frame pair is measured, on which scale."""

    metric: str  # the per-frame metric name in results
    label: str
    definition: str
    scale: Callable[[int], dict[str, Any]]  # bit depth -> score_scale
    prepare: Callable[[np.ndarray, int], np.ndarray]  # (luma, bit depth) -> a prepared plane
    reference: Callable[[np.ndarray], Any]  # prepared reference plane -> what compute takes of it
    compute: Callable[[Any, np.ndarray, int], float]  # (reference side, prepared dist, bit depth) -> value
    min_size: int = 1

    def measure(self, ref: np.ndarray, dist: np.ndarray, bit_depth: int) -> float:
        """The metric of one pair of prepared planes."""
        return self.compute(self.reference(ref), dist, bit_depth)


def _index_scale(low: float) -> Callable[[int], dict[str, Any]]:
    return lambda bit_depth: {"name": "index", "min": low, "max": 1.0, "higher_is_better": True}


LUMA_METRICS = {
    "psnr": LumaMetric(
        "psnr_y", "PSNR-Y",
        "10*log10(peak^2/MSE) of luma, peak 2^bits-1, capped at 6*bits+12 dB (ffmpeg psnr, libvmaf's cap)",
        lambda bit_depth: {"name": "dB", "min": 0.0, "max": metrics.psnr_cap(bit_depth), "higher_is_better": True},
        lambda luma, bit_depth: luma,
        lambda ref: ref,
        metrics.psnr,
    ),
    "ssim": LumaMetric(
        "ssim_y", "SSIM-Y",
        "SSIM of luma, 11x11 Gaussian window sigma 1.5, no downsampling (libvmaf float_ssim scale=1)",
        _index_scale(-1.0),
        metrics.to_8bit_scale,
        metrics.local_statistics,
        lambda ref, dist, bit_depth: metrics.ssim_against(ref, dist),
        min_size=11,
    ),
    "ms-ssim": LumaMetric(
        "ms_ssim_y", "MS-SSIM-Y",
        "5-scale MS-SSIM of luma, 9/7 wavelet decimation (libvmaf float_ms_ssim)",
        _index_scale(0.0),
        metrics.to_8bit_scale,
        metrics.ms_ssim_reference,
        lambda ref, dist, bit_depth: metrics.ms_ssim_against(ref, dist),
        min_size=metrics.MS_SSIM_MIN_SIZE,
    ),
}


class LumaMetricScorer(FrameScorer):
    """A :class:`LumaMetric` per frame pair, on the CPU whatever the device: luma is resized (if asked) and
    converted in the prefetch thread, measured in the caller's. With ``shared``, the reference side of each
    frame comes from (or goes to) the scorers of the same reference's other renditions."""

    def __init__(self, engine: Engine, options: FrameOptions, formats: tuple[VideoFormat, VideoFormat],
                 device: str = "cpu", threads: int = 0, shared: SharedReference | None = None):
        self.engine, self.spec, self.shared = engine.name, LUMA_METRICS[engine.name], shared
        width, height, self.bit_depth = measured_geometry(self.engine, options.analysis_size, formats,
                                                          self.spec.min_size)
        self.size = (width, height)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.engine,
            "kind": "baseline",
            "label": self.spec.label,
            "metric": self.spec.metric,
            "definition": self.spec.definition,
            "backend": "numpy+opencv-cpu",
            "untrained": False,
            "score_scale": self.spec.scale(self.bit_depth),
        }

    def prepare(self, pair: FramePair) -> tuple[int, np.ndarray, np.ndarray]:
        ref, dist = (self.spec.prepare(resized(frame.y, self.size), self.bit_depth) for frame in (pair.ref, pair.dist))
        return pair.index, ref, dist

    def score_batch(self, prepared: list[tuple[int, np.ndarray, np.ndarray]]) -> list[dict[str, float]]:
        return [{self.spec.metric: self.spec.compute(self._reference(index, ref), dist, self.bit_depth)}
                for index, ref, dist in prepared]

    def _reference(self, index: int, plane: np.ndarray) -> Any:
        if self.shared is None:
            return self.spec.reference(plane)
        return self.shared.get(index, lambda: self.spec.reference(plane))
