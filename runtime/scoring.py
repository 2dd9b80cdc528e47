"""Full-reference scoring: paired video frames -> engine -> per-frame and pooled scores.

Decoding and colour conversion run in a prefetch thread so they overlap with
inference. Results are shaped like libvmaf's JSON (``frames[].frameNum``,
``frames[].metrics``, ``pooled_metrics``) and, when output paths are given,
written as atomic snapshots while scoring runs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import vqa_rt
from vqa_rt.errors import VqaRtError
from vqa_rt.runtime.frames import paired_frames, prefetch
from vqa_rt.runtime.pooling import pool
from vqa_rt.runtime.scorer_factory import check_engine, make_scorer
from vqa_rt.runtime.video import VideoReader, open_video
from vqa_rt.runtime.writers import SnapshotWriter, check_output_paths, render_csv, render_json

ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class VideoInput:
    """A video to read: a path (``-`` for stdin) and, for raw YUV, its geometry."""

    path: str
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None

    def open(self) -> VideoReader:
        return open_video(self.path, self.width, self.height, self.pix_fmt)


@dataclass(frozen=True)
class ScoreOptions:
    """How frames are selected and converted before inference."""

    matrix: str = "bt709"
    color_range: str | None = None  # None: the Y4M tag if present, else limited
    analysis_size: tuple[int, int] | None = None  # (width, height); None: native
    frame_skip: int = 0
    frame_stride: int = 1
    max_frames: int | None = None
    batch_size: int = 1


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _selected_count(total: int | None, options: ScoreOptions) -> int | None:
    if total is None:
        return options.max_frames
    available = max(0, -(-(total - options.frame_skip) // options.frame_stride))
    return available if options.max_frames is None else min(available, options.max_frames)


def _result_skeleton(model: dict, ref: VideoInput, dist: VideoInput, fmt, options: ScoreOptions) -> dict:
    return {
        "version": vqa_rt.__version__,
        "model": model,
        "input": {
            "reference": ref.path,
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
    reference: VideoInput | str,
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
    (``.onnx``) or a baseline (``psnr``, ``ssim``, ``ms-ssim``, ``vmaf``).

    Returns the libvmaf-shaped result dict; ``model.metric`` names the per-frame
    metric that is the engine's score. Every input is validated before any output
    file is created; if scoring stops early (bad frame, interrupt) the frames
    already scored are written with ``"complete": false`` and the error is re-raised.
    """
    reference = VideoInput(reference) if isinstance(reference, str) else reference
    distorted = VideoInput(distorted) if isinstance(distorted, str) else distorted
    info = check_engine(engine)
    outputs = [(p, r) for p, r in ((output_json, render_json), (output_csv, render_csv)) if p]
    check_output_paths([p for p, _ in outputs])
    with reference.open() as ref_reader, distorted.open() as dist_reader:
        pairs = paired_frames(ref_reader, dist_reader, options.frame_skip, options.frame_stride, options.max_frames)
        formats = (ref_reader.format, dist_reader.format)
        total = _selected_count(ref_reader.frame_count, options)
        with make_scorer(engine, info, options, formats, device=device, threads=threads) as scorer:
            result = _result_skeleton(scorer.describe(), reference, distorted, ref_reader.format, options)
            writer = SnapshotWriter(outputs)
            prepared = prefetch((pair.index, scorer.prepare(pair)) for pair in pairs)
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
