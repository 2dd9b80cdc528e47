"""Perceptual QP maps for a video, streamed frame by frame.

A video is decoded once; each frame's quantization-step map (from an exported
``qpmap`` model, or the non-learned activity baseline) is converted to an integer
delta-QP map (:class:`~vqa_rt.runtime.qpmaps.conversion.QPConversion`) and either
written to an encoder's map file (:func:`write_qp_maps`, constant memory) or
collected into arrays (:func:`qp_maps`). Decoding and colour conversion run in a
prefetch thread so they overlap inference.

Everything is validated (engine kind, options, format, output directories, the
video's header and size) before any output exists, and files appear only when the
whole video is mapped: a failed or interrupted run writes nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Callable, ContextManager

import numpy as np

import vqa_rt
from vqa_rt.errors import InputError
from vqa_rt.runtime.engines.record import Engine, resolve_engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.sampling import FrameSampling
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.video import Frame, VideoFormat
from vqa_rt.runtime.outputs import check_output_paths, render_json, write_atomic
from vqa_rt.runtime.pipeline.fanout import Branch, run_pipeline
from vqa_rt.runtime.qpmaps.conversion import QPConversion, grid_shape
from vqa_rt.runtime.qpmaps.formats import SUMMARY_ONLY, check_format, conversion_for, open_map_writer
from vqa_rt.runtime.qpmaps.shipped import SHIPPED_QS_MODEL
from vqa_rt.runtime.qpmaps.sources import ActivityQS, ModelQS

METHODS = ("model", "activity")
OPTIONS_RECORDED = ("matrix", "color_range", "frame_skip", "max_frames")  # what the summary's input records

ProgressCallback = Callable[[int, "int | None"], None]


@dataclass
class QPMaps:
    """Every frame's maps: ``delta`` int8 and ``qp`` (absolute, uint8), both (frames, rows, cols)."""

    delta: np.ndarray
    qp: np.ndarray
    summary: dict[str, Any]


def frame_stats(delta: np.ndarray, base_qp: int) -> dict[str, Any]:
    """One frame's mean/min/max delta QP and mean absolute QP."""
    mean = float(delta.mean())
    return {"mean_delta_qp": mean, "min_delta_qp": int(delta.min()), "max_delta_qp": int(delta.max()),
            "mean_qp": base_qp + mean}


class MapSummary:
    """Per-frame mean/min/max delta QP and a histogram over all frames, as a JSON-ready dict."""

    def __init__(self, header: dict[str, Any], conversion: QPConversion):
        self.result = {**header, "frames": [], "pooled": {}, "histogram": {}, "complete": False}
        self.conversion = conversion
        self._counts = np.zeros(2 * conversion.max_delta + 1, np.int64)

    def add(self, index: int, delta: np.ndarray) -> None:
        self.result["frames"].append({"frameNum": index, **frame_stats(delta, self.conversion.base_qp)})
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


def check_method(engine: str | None, method: str) -> Engine | None:
    """Check the method and its engine before the video is opened; the model engine (default: the shipped one)."""
    if method not in METHODS:
        raise InputError(f"unknown QP-map method {method!r} (known: {', '.join(METHODS)})")
    if method == "activity":
        if engine is not None:
            raise InputError("the activity method takes no engine")
        return None
    return resolve_engine(SHIPPED_QS_MODEL if engine is None else engine, ("qpmap",))


def check_map_options(options: FrameOptions) -> None:
    """QP maps are made for every frame at the video's own size: refuse options that would change that."""
    if options.analysis_size is not None:
        raise InputError("QP maps are made at the video's own size: the analysis size does not apply")
    if options.engine_sampling.chosen:
        raise InputError("QP maps are made for every frame (an encoder needs one per frame): frame stride and "
                         "sampling do not apply")


MapSink = Callable[[tuple[int, int]], ContextManager[Callable[[np.ndarray], None]]]


class QPMapBranch(Branch):
    """QP maps in a pipeline: each frame of the reference (source) video after ``skip`` -> QS -> delta-QP map,
    summarised in :attr:`summary` (per-frame lines: statistics, and the map itself with ``line_maps``) and
    handed to ``sink``: a context manager, opened with the map's
    (rows, cols), giving the callable that takes each frame's map (``None``: maps only summarised)."""

    roles = ("reference",)

    def __init__(self, name: str, engine: Engine | None, conversion: QPConversion, options: FrameOptions, *,
                 path: str, sink: MapSink | None = None, device: str = "cpu", threads: int = 0,
                 progress: ProgressCallback | None = None, line_maps: bool = False):
        check_map_options(options)
        self.name, self.engine, self.conversion, self.options = name, engine, conversion, options
        self.line_maps = line_maps
        self.path, self.sink, self.device, self.threads, self.progress = path, sink, device, threads, progress
        self.summary: MapSummary | None = None
        self.total: int | None = None
        self._stack = contextlib.ExitStack()
        self._take: Callable[[np.ndarray], None] | None = None

    def sampling(self) -> FrameSampling:
        return self.options.sampling()

    @property
    def results(self) -> dict[str, Any]:
        return self.summary.result if self.summary is not None else {}

    def run_entry(self) -> dict[str, Any]:
        return {"model": self.results.get("model"), "pooled": self.results.get("pooled"),
                "map": self.results.get("map")}

    def start(self, formats: dict[str, VideoFormat], total: int | None) -> None:
        fmt, self.total = formats["reference"], total
        self.source = self._stack.enter_context(ActivityQS() if self.engine is None else ModelQS(
            self.engine, self.options, fmt, self.device, self.threads))
        rows, cols = grid_shape(fmt.width, fmt.height, self.conversion.grid)
        self.summary = MapSummary({
            "version": vqa_rt.__version__,
            "model": self.source.describe(),
            "input": {"path": self.path, "width": fmt.width, "height": fmt.height, "pix_fmt": fmt.pix_fmt,
                      **{key: getattr(self.options, key) for key in OPTIONS_RECORDED}},
            "conversion": {**asdict(self.conversion), "qp_range": list(self.conversion.qp_range)},
            "map": {"rows": rows, "cols": cols, "grid": self.conversion.grid},
        }, self.conversion)
        if self.sink is not None:
            self._take = self._stack.enter_context(self.sink((rows, cols)))

    def prepare(self, frame: Frame) -> Any:
        return self.source.prepare(frame)

    def infer(self, indices: list[int], prepared: list[Any]) -> list[tuple[int, np.ndarray]]:
        return [(index, self.conversion(self.source.qs(item))) for index, item in zip(indices, prepared)]

    def record(self, index: int, output: np.ndarray) -> None:
        self.summary.add(index, output)
        if self._take is not None:
            self._take(output)
        if self.progress:
            self.progress(len(self.summary.result["frames"]), self.total)

    def frame_line(self, output: np.ndarray) -> dict[str, Any]:
        stats = frame_stats(output, self.conversion.base_qp)
        return {**stats, "delta_qp": output.tolist()} if self.line_maps else stats

    def close(self, error: BaseException | None) -> None:
        if error is None:
            self._stack.close()
            self.summary.finish()
        else:  # the sink's file is discarded
            self._stack.__exit__(type(error), error, error.__traceback__)


def map_file_sink(fmt: str, output: str, base_qp: int) -> MapSink | None:
    """A sink writing maps to ``output`` in ``fmt`` (the file appears when the run completes); None for
    the summary-only format."""
    if fmt == SUMMARY_ONLY:
        return None

    @contextlib.contextmanager
    def sink(shape: tuple[int, int]):
        with open_map_writer(fmt, output, shape, base_qp) as writer:
            yield writer.write

    return sink


def _map_video(video: VideoInput, branch: QPMapBranch) -> dict[str, Any]:
    with video.open() as reader:
        run_pipeline({"reference": reader}, [branch])
    return branch.results


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
    """Write every frame's delta-QP map to ``output`` in ``fmt`` (see :mod:`vqa_rt.runtime.qpmaps.formats`).

    ``conversion`` defaults to ``QPConversion(grid=default_grid(fmt))`` (64 for the
    Kvazaar formats, else 16). ``summary_path`` also writes the JSON summary (the
    ``json`` format writes only that, to ``output``). Memory stays constant however
    long the video. Returns the summary.
    """
    conversion = conversion if conversion is not None else conversion_for(fmt)
    check_format(fmt, output, conversion.grid)
    model = check_method(engine, method)
    video = VideoInput(video) if isinstance(video, str) else video
    check_output_paths([output, *([summary_path] if summary_path else [])],
                       (model.files if model is not None else []) + [video.path])
    summary_paths = [p for p in (output if fmt == SUMMARY_ONLY else None, summary_path) if p]
    branch = QPMapBranch("qpmap", model, conversion, frame_options, path=video.path,
                         sink=map_file_sink(fmt, output, conversion.base_qp), device=device, threads=threads,
                         progress=progress)
    result = _map_video(video, branch)
    result["map"].update(format=fmt, output=output)
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
    model = check_method(engine, method)
    video = VideoInput(video) if isinstance(video, str) else video
    maps: list[np.ndarray] = []

    @contextlib.contextmanager
    def collect(shape: tuple[int, int]):
        yield maps.append

    result = _map_video(video, QPMapBranch("qpmap", model, conversion, frame_options, path=video.path, sink=collect,
                                           device=device, threads=threads, progress=progress))
    delta = np.stack(maps)
    return QPMaps(delta=delta, qp=conversion.absolute(delta), summary=result)
