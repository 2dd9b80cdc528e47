"""Scoring: selected frames (of a distorted video and its reference, or of one video for a
no-reference engine) -> engine -> per-frame and pooled scores.

Decoding and colour conversion run in a prefetch thread so they overlap with
inference. Results are shaped like libvmaf's JSON (``frames[].frameNum``,
``frames[].metrics``, ``pooled_metrics``) and, when output paths are given,
written as atomic snapshots while scoring runs.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Iterator

import vqa_rt
from vqa_rt.errors import InputError, VqaRtError
from vqa_rt.runtime.frames import paired_frames, prefetch, single_frames
from vqa_rt.runtime.model_info import ModelInfo
from vqa_rt.runtime.pooling import pool
from vqa_rt.runtime.sampling import FrameSampling
from vqa_rt.runtime.scorer_factory import check_engine, make_scorer, takes_reference
from vqa_rt.runtime.video import VideoReader, open_video
from vqa_rt.runtime.writers import SnapshotWriter, check_output_paths, render_csv, render_json

ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class VideoInput:
    """A video to read: a path (``-`` for stdin) and, for raw YUV, its geometry and frame rate."""

    path: str
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None
    fps: float | None = None

    def open(self) -> VideoReader:
        return open_video(self.path, self.width, self.height, self.pix_fmt, self.fps)


@dataclass(frozen=True)
class ScoreOptions:
    """How frames are selected and converted before inference.

    At most one of ``frame_stride``, ``sample_fps`` and ``sample_frames`` (see
    :mod:`.sampling`); with none, the engine's default: every frame, or for NR models
    1 frame per second.
    """

    matrix: str = "bt709"
    color_range: str | None = None  # None: the Y4M tag if present, else limited
    analysis_size: tuple[int, int] | None = None  # (width, height); None: native
    frame_skip: int = 0
    frame_stride: int | None = None
    max_frames: int | None = None
    batch_size: int = 1
    sample_fps: float | None = None
    sample_frames: int | None = None

    def sampling(self) -> FrameSampling:
        return FrameSampling(self.frame_skip, self.frame_stride, self.sample_fps, self.sample_frames, self.max_frames)

    def with_default_sampling(self, info: ModelInfo | None) -> "ScoreOptions":
        """These options, with the engine's default sampling if none is chosen (every frame unless
        the model's metadata names another)."""
        if any(value is not None for value in (self.frame_stride, self.sample_fps, self.sample_frames)):
            return self
        default = (info.preprocess.get("sampling") if info is not None else None) or {"frame_stride": 1}
        return replace(self, **default)


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_reference(engine: str, info: ModelInfo | None, reference: VideoInput | None) -> None:
    if takes_reference(info) and reference is None:
        raise InputError(f"{engine}: scores a distorted video against its reference: give the reference (--reference)")
    if not takes_reference(info) and reference is not None:
        raise InputError(f"{engine}: is a no-reference ({info.kind}) model and takes no reference video "
                         "(drop --reference)")


@contextlib.contextmanager
def _selected(reference: VideoInput | None, distorted: VideoInput, sampling: FrameSampling):
    """Open the videos; yield the selected items (frame pairs, or frames of the one video), the
    videos' formats (reference first) and how many items there will be (None: unknown)."""
    with contextlib.ExitStack() as stack:
        readers = [stack.enter_context(video.open()) for video in (reference, distorted) if video is not None]
        formats = tuple(reader.format for reader in readers)
        first = readers[0]
        total = sampling.count_selected(first.frame_count, first.format.fps or readers[-1].format.fps)
        items = single_frames(first, sampling) if len(readers) == 1 else paired_frames(*readers, sampling)
        yield items, formats, total


def _result_skeleton(model: dict, ref: VideoInput | None, dist: VideoInput, fmt, options: ScoreOptions) -> dict:
    return {
        "version": vqa_rt.__version__,
        "model": model,
        "input": {
            "reference": None if ref is None else ref.path,
            "distorted": dist.path,
            "width": fmt.width,
            "height": fmt.height,
            "pix_fmt": fmt.pix_fmt,
            **asdict(options),
        },
        "frames": [],
        "pooled_metrics": {},
        "complete": False,
        "error": None,
    }


def _record(result: dict, pending: deque, metrics: list[dict[str, float]]) -> None:
    """Append the metrics a scorer returned to the frames owed them, oldest first."""
    for values in metrics:
        result["frames"].append({"frameNum": pending.popleft(), "metrics": values})


def _pool_all(result: dict) -> None:
    names = list(result["frames"][0]["metrics"]) if result["frames"] else []
    result["pooled_metrics"] = {n: pool([f["metrics"][n] for f in result["frames"]]) for n in names}


def score(
    engine: str,
    reference: VideoInput | str | None,
    distorted: VideoInput | str,
    options: ScoreOptions = ScoreOptions(),
    *,
    output_json: str | None = None,
    output_csv: str | None = None,
    device: str = "cpu",
    threads: int = 0,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Score a distorted video against its reference with an engine: an FR model file
    (``.onnx``) or a baseline (``psnr``, ``ssim``, ``ms-ssim``, ``vmaf``); or, with an NR
    model file and ``reference`` None, score the distorted video alone.

    Returns the libvmaf-shaped result dict; ``model.metric`` names the per-frame
    metric that is the engine's score. Every input is validated before any output
    file is created; if scoring stops early (bad frame, interrupt) the frames
    already scored are written with ``"complete": false`` and the error is re-raised.
    """
    reference = VideoInput(reference) if isinstance(reference, str) else reference
    distorted = VideoInput(distorted) if isinstance(distorted, str) else distorted
    info = check_engine(engine)
    _check_reference(engine, info, reference)
    options = options.with_default_sampling(info)
    outputs = [(p, r) for p, r in ((output_json, render_json), (output_csv, render_csv)) if p]
    check_output_paths([p for p, _ in outputs])
    with _selected(reference, distorted, options.sampling()) as (items, formats, total):
        with make_scorer(engine, info, options, formats, device=device, threads=threads) as scorer:
            result = _result_skeleton(scorer.describe(), reference, distorted, formats[0], options)
            writer = SnapshotWriter(outputs)
            prepared = prefetch((item.index, scorer.prepare(item)) for item in items)
            pending: deque[int] = deque()  # frames given to the scorer, not yet scored
            done = 0
            try:
                for batch in _batches(prepared, options.batch_size):
                    pending.extend(index for index, _ in batch)
                    _record(result, pending, scorer.score_batch([item for _, item in batch]))
                    done += len(batch)
                    if progress:
                        progress(done, total)
                    if result["frames"] and outputs:
                        _pool_all(result)
                        writer.update(result)
                _record(result, pending, scorer.finish())
                if pending:
                    raise RuntimeError(f"{engine}: the scorer returned no metrics for {len(pending)} frames")
            except (VqaRtError, KeyboardInterrupt) as exc:
                result["error"] = str(exc) or type(exc).__name__
                if result["frames"] and outputs:
                    _pool_all(result)
                    writer.update(result, force=True)
                raise
    _pool_all(result)
    result["complete"] = True
    writer.update(result, force=True)
    return result
