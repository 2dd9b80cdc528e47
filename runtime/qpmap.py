"""Perceptual QP maps for a video, streamed frame by frame.

A video is decoded once; each frame's quantization-step map (from an exported
``qpmap`` model, or the non-learned activity baseline) is converted to an integer
delta-QP map (:class:`~vqa_rt.runtime.qp_conversion.QPConversion`) and either
written to an encoder's map file (:func:`write_qp_maps`, constant memory) or
collected into arrays (:func:`qp_maps`). Decoding and colour conversion run in a
prefetch thread so they overlap inference.

Everything is validated (engine kind, options, format, output directories, the
video's header and size) before any output exists, and files appear only when the
whole video is mapped: a failed or interrupted run writes nothing.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import numpy as np

import vqa_rt
from vqa_rt.errors import InputError

from .color import MATRICES, RANGES
from .frames import prefetch
from .model_info import ModelInfo, read_model_info
from .qp_conversion import QPConversion, grid_shape
from .qpmap_formats import SUMMARY_ONLY, check_format, default_grid, open_map_writer
from .qs_sources import ActivityQS, ModelQS
from .scoring import VideoInput
from .writers import check_output_paths, render_json, write_atomic

METHODS = ("model", "activity")

ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class FrameOptions:
    """How frames are read and converted before QS estimation."""

    matrix: str = "bt709"
    color_range: str | None = None  # None: the Y4M tag if present, else limited
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.matrix not in MATRICES:
            raise InputError(f"unknown colour matrix {self.matrix!r} (known: {', '.join(MATRICES)})")
        if self.color_range is not None and self.color_range not in RANGES:
            raise InputError(f"unknown colour range {self.color_range!r} (known: {', '.join(RANGES)})")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"max frames must be 1 or more, got {self.max_frames}")


@dataclass
class QPMaps:
    """Every frame's maps: ``delta`` int8 and ``qp`` (absolute, uint8), both (frames, rows, cols)."""

    delta: np.ndarray
    qp: np.ndarray
    summary: dict[str, Any]


class MapSummary:
    """Per-frame mean/min/max delta QP and a histogram over all frames, as a JSON-ready dict."""

    def __init__(self, header: dict[str, Any], conversion: QPConversion):
        self.result = {**header, "frames": [], "pooled": {}, "histogram": {}, "complete": False}
        self.conversion = conversion
        self._counts = np.zeros(2 * conversion.max_delta + 1, np.int64)

    def add(self, index: int, delta: np.ndarray) -> None:
        mean = float(delta.mean())
        self.result["frames"].append({
            "frameNum": index,
            "mean_delta_qp": mean,
            "min_delta_qp": int(delta.min()),
            "max_delta_qp": int(delta.max()),
            "mean_qp": self.conversion.base_qp + mean,
        })
        self._counts += np.bincount(delta.ravel().astype(np.int64) + self.conversion.max_delta,
                                    minlength=self._counts.size)

    def finish(self) -> dict[str, Any]:
        frames = self.result["frames"]
        self.result["pooled"] = {
            "mean_delta_qp": float(np.mean([f["mean_delta_qp"] for f in frames])),
            "min_delta_qp": min(f["min_delta_qp"] for f in frames),
            "max_delta_qp": max(f["max_delta_qp"] for f in frames),
        }
        low = -self.conversion.max_delta
        self.result["histogram"] = {str(low + i): int(n) for i, n in enumerate(self._counts)}
        self.result["complete"] = True
        return self.result


def _engine_info(engine: str | None, method: str) -> ModelInfo | None:
    """Check the method and its engine before the video is opened; the model's metadata, if any."""
    if method not in METHODS:
        raise InputError(f"unknown QP-map method {method!r} (known: {', '.join(METHODS)})")
    if method == "activity":
        if engine is not None:
            raise InputError("the activity method takes no engine")
        return None
    if engine is None:
        raise InputError("the model method needs an engine (.onnx from 'vqa-rt export qpmap')")
    return read_model_info(engine, expected_kind="qpmap")


@contextlib.contextmanager
def _mapping(video: VideoInput | str, info: ModelInfo | None, conversion: QPConversion,
             frame_options: FrameOptions, device: str, threads: int,
             progress: ProgressCallback | None) -> Iterator[tuple[MapSummary, Iterator[np.ndarray]]]:
    """Open the video and the QS source; yield the summary and an iterator of delta maps that fills it."""
    video = VideoInput(video) if isinstance(video, str) else video
    with video.open() as reader:
        fmt = reader.format
        source = ActivityQS() if info is None else ModelQS(
            info, fmt, frame_options.matrix, frame_options.color_range, device, threads)
        with source:
            rows, cols = grid_shape(fmt.width, fmt.height, conversion.grid)
            summary = MapSummary({
                "version": vqa_rt.__version__,
                "model": source.describe(),
                "input": {"path": video.path, "width": fmt.width, "height": fmt.height, "pix_fmt": fmt.pix_fmt,
                          **asdict(frame_options)},
                "conversion": {**asdict(conversion), "qp_range": list(conversion.qp_range)},
                "map": {"rows": rows, "cols": cols, "grid": conversion.grid},
            }, conversion)
            total = reader.frame_count
            if frame_options.max_frames is not None:
                total = min(total or frame_options.max_frames, frame_options.max_frames)

            def maps() -> Iterator[np.ndarray]:
                frames = itertools.islice(reader, frame_options.max_frames)
                for index, prepared in prefetch((f.index, source.prepare(f)) for f in frames):
                    delta = conversion(source.qs(prepared))
                    summary.add(index, delta)
                    if progress:
                        progress(len(summary.result["frames"]), total)
                    yield delta

            yield summary, maps()


def write_qp_maps(
    video: VideoInput | str,
    output: str,
    fmt: str,
    engine: str | None = None,
    *,
    method: str = "model",
    conversion: QPConversion | None = None,
    frame_options: FrameOptions = FrameOptions(),
    summary_path: str | None = None,
    device: str = "cpu",
    threads: int = 0,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Write every frame's delta-QP map to ``output`` in ``fmt`` (see :mod:`.qpmap_formats`).

    ``conversion`` defaults to ``QPConversion(grid=default_grid(fmt))`` (64 for the
    Kvazaar formats, else 16). ``summary_path`` also writes the JSON summary (the
    ``json`` format writes only that, to ``output``). Memory stays constant however
    long the video. Returns the summary.
    """
    conversion = conversion if conversion is not None else QPConversion(grid=default_grid(fmt))
    check_format(fmt, output, conversion.grid)
    info = _engine_info(engine, method)
    summary_paths = [p for p in (output if fmt == SUMMARY_ONLY else None, summary_path) if p]
    check_output_paths([output, *summary_paths])
    with _mapping(video, info, conversion, frame_options, device, threads, progress) as (summary, maps):
        summary.result["map"].update(format=fmt, output=output)
        if fmt == SUMMARY_ONLY:
            for _ in maps:  # the summary is all this format keeps
                pass
        else:
            shape = (summary.result["map"]["rows"], summary.result["map"]["cols"])
            with open_map_writer(fmt, output, shape, conversion.base_qp) as writer:
                for delta in maps:
                    writer.write(delta)
        result = summary.finish()
    for path in summary_paths:
        write_atomic(path, render_json(result))
    return result


def qp_maps(
    video: VideoInput | str,
    engine: str | None = None,
    *,
    method: str = "model",
    conversion: QPConversion = QPConversion(),
    frame_options: FrameOptions = FrameOptions(),
    device: str = "cpu",
    threads: int = 0,
    progress: ProgressCallback | None = None,
) -> QPMaps:
    """Every frame's delta-QP and absolute QP maps as arrays, with the summary."""
    info = _engine_info(engine, method)
    with _mapping(video, info, conversion, frame_options, device, threads, progress) as (summary, maps):
        delta = np.stack(list(maps))
        result = summary.finish()
    return QPMaps(delta=delta, qp=conversion.absolute(delta), summary=result)
