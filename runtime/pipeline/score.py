"""Scoring: selected frames (of a distorted video and its reference, or of one video for a
no-reference engine) -> engine -> per-frame and pooled scores.

:func:`score` is the one-branch case of the pipeline (:mod:`.fanout`): decoding and colour
conversion run in threads of their own so they overlap with inference. Results are shaped like
libvmaf's JSON (``frames[].frameNum``, ``frames[].metrics``, ``pooled_metrics``) and, when output
paths are given, written as atomic snapshots while scoring runs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict
from typing import Any, Callable

import vqa_rt
from vqa_rt.errors import InputError, VqaRtError
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.sampling import FrameSampling
from vqa_rt.runtime.frames.sources import VideoInput, open_inputs
from vqa_rt.runtime.frames.video import VideoFormat
from vqa_rt.runtime.outputs import SnapshotWriter, check_output_paths, render_csv, render_json
from vqa_rt.runtime.pipeline.fanout import Branch, run_pipeline
from vqa_rt.runtime.pipeline.pooling import pool
from vqa_rt.runtime.scorers.base import FrameScorer
from vqa_rt.runtime.scorers.factory import make_scorer, scoring_engine

ProgressCallback = Callable[[int, "int | None"], None]


def check_reference(engine: Engine, reference: VideoInput | None) -> None:
    """Whether a reference is given exactly when ``engine`` takes one."""
    if engine.takes_reference and reference is None:
        raise InputError(f"{engine.name}: scores a distorted video against its reference: give the reference "
                         "(--reference)")
    if not engine.takes_reference and reference is not None:
        raise InputError(f"{engine.name}: is a no-reference ({engine.kind}) model and takes no reference video "
                         "(drop --reference)")


def _result_skeleton(model: dict, ref: VideoInput | None, dist: VideoInput, fmt: VideoFormat,
                     options: FrameOptions) -> dict:
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


def _pool_all(result: dict, scorer: FrameScorer) -> None:
    names = list(result["frames"][0]["metrics"]) if result["frames"] else []
    result["pooled_metrics"] = {n: pool([f["metrics"][n] for f in result["frames"]]) for n in names}
    video = scorer.summary([frame["metrics"] for frame in result["frames"]])
    if video is not None:
        result["video"] = video


class ScoreRecord:
    """One distorted video's results (libvmaf-shaped) as its frames are scored, kept in :attr:`result` and,
    when ``outputs`` are given, written there as atomic snapshots."""

    def __init__(self, outputs: list[tuple[str, Callable]] = (), progress: ProgressCallback | None = None):
        self.writer = SnapshotWriter(list(outputs))
        self.progress = progress
        self.scorer: FrameScorer | None = None
        self.result: dict[str, Any] = {}
        self.total: int | None = None

    def begin(self, scorer: FrameScorer, reference: VideoInput | None, distorted: VideoInput, fmt: VideoFormat,
              options: FrameOptions, total: int | None) -> None:
        self.scorer, self.total = scorer, total
        self.result = _result_skeleton(scorer.describe(), reference, distorted, fmt, options)

    def add(self, index: int, metrics: dict[str, float]) -> None:
        self.result["frames"].append({"frameNum": index, "metrics": metrics})
        if self.progress:
            self.progress(len(self.result["frames"]), self.total)
        if self.writer.due():  # pooling every frame would cost O(frames) per frame
            _pool_all(self.result, self.scorer)
            self.writer.update(self.result, force=True)

    def end(self, error: BaseException | None) -> None:
        """Pool and write the final results (complete, or as far as they got when ``error`` stopped the run)."""
        if not self.result:
            return
        if error is None:
            _pool_all(self.result, self.scorer)
            self.result["complete"] = True
            self.writer.update(self.result, force=True)
        elif isinstance(error, (VqaRtError, KeyboardInterrupt)):
            self.result["error"] = str(error) or type(error).__name__
            if self.result["frames"]:
                _pool_all(self.result, self.scorer)
                self.writer.update(self.result, force=True)

    def entry(self) -> dict[str, Any]:
        return {"model": self.result.get("model"), "pooled": self.result.get("pooled_metrics"),
                "error": self.result.get("error")}


class ScoreBranch(Branch):
    """A scoring engine in a pipeline, scoring the ``distorted_role`` video (against the reference where the
    engine takes one); its results in a :class:`ScoreRecord`."""

    def __init__(self, name: str, engine: Engine, options: FrameOptions, *, inputs: dict[str, VideoInput],
                 outputs: list[tuple[str, Callable]] = (), device: str = "cpu", threads: int = 0,
                 progress: ProgressCallback | None = None, distorted_role: str = "distorted"):
        self.name, self.engine, self.options = name, engine, options
        self.roles = ("reference", distorted_role) if engine.takes_reference else (distorted_role,)
        self.batch_size = options.batch_size
        self.inputs, self.device, self.threads = inputs, device, threads
        self.scores = ScoreRecord(outputs, progress)
        self.scorer: FrameScorer | None = None
        self.pending: deque[int] = deque()  # frames given to the scorer, not yet scored

    def sampling(self) -> FrameSampling:
        return self.options.sampling()

    @property
    def results(self) -> dict[str, Any]:
        return self.scores.result

    def run_entry(self) -> dict[str, Any]:
        return self.scores.entry()

    def start(self, formats: dict[str, VideoFormat], total: int | None) -> None:
        self.scorer = self.open_scorer(tuple(formats[r] for r in self.roles))
        self.scorer.__enter__()
        self.scores.begin(self.scorer, self.inputs.get("reference"), self.inputs[self.roles[-1]],
                          formats[self.roles[0]], self.options, total)

    def open_scorer(self, formats: tuple[VideoFormat, ...]) -> FrameScorer:
        """The (not yet entered) scorer, once the videos' formats are known (by role)."""
        return make_scorer(self.engine, self.options, formats, device=self.device, threads=self.threads)

    def prepare(self, item: Any) -> Any:
        return self.scorer.prepare(item)

    def _owed(self, metrics: list[dict[str, float]]) -> list[tuple[int, dict[str, float]]]:
        return [(self.pending.popleft(), values) for values in metrics]

    def infer(self, indices: list[int], prepared: list[Any]) -> list[tuple[int, dict[str, float]]]:
        self.pending.extend(indices)
        return self._owed(self.scorer.score_batch(prepared))

    def finish(self) -> list[tuple[int, dict[str, float]]]:
        owed = self._owed(self.scorer.finish())
        if self.pending:
            raise RuntimeError(f"{self.engine.name}: the scorer returned no metrics for {len(self.pending)} frames")
        return owed

    def record(self, index: int, output: dict[str, float]) -> None:
        self.scores.add(index, output)

    def close(self, error: BaseException | None) -> None:
        if self.scorer is not None:
            self.scorer.__exit__(None, None, None)
        self.scores.end(error)


def score_outputs(output_json: str | None, output_csv: str | None) -> list[tuple[str, Callable]]:
    """The snapshot targets for result files (JSON, CSV)."""
    return [(p, r) for p, r in ((output_json, render_json), (output_csv, render_csv)) if p]


def input_files(engine: Engine, inputs: dict[str, VideoInput]) -> list[str]:
    """The files a scoring job reads: the model file (a baseline has none) and the videos."""
    return engine.files + [video.path for video in inputs.values()]


def score(
    engine: Engine | str,
    reference: VideoInput | str | None,
    distorted: VideoInput | str,
    options: FrameOptions = FrameOptions(),
    *,
    output_json: str | None = None,
    output_csv: str | None = None,
    device: str = "cpu",
    threads: int = 0,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Score a distorted video against its reference with an engine: an FR model file
    (``.onnx`` or ``.plan``) or a baseline (``psnr``, ``ssim``, ``ms-ssim``, ``vmaf``); or, with an NR
    model file and ``reference`` None, score the distorted video alone. ``engine`` is its name or
    the :class:`~vqa_rt.runtime.engines.record.Engine` it resolved to.

    Returns the libvmaf-shaped result dict; ``model.metric`` names the per-frame
    metric that is the engine's score. Every input is validated before any output
    file is created; if scoring stops early (bad frame, interrupt) the frames
    already scored are written with ``"complete": false`` and the error is re-raised.
    """
    reference = VideoInput(reference) if isinstance(reference, str) else reference
    distorted = VideoInput(distorted) if isinstance(distorted, str) else distorted
    engine = scoring_engine(engine) if isinstance(engine, str) else engine
    check_reference(engine, reference)
    options = options.with_default_sampling(engine.default_sampling)
    inputs = {role: video for role, video in (("reference", reference), ("distorted", distorted)) if video}
    outputs = score_outputs(output_json, output_csv)
    check_output_paths([path for path, _ in outputs], input_files(engine, inputs))
    branch = ScoreBranch("score", engine, options, inputs=inputs, device=device, threads=threads,
                         outputs=outputs, progress=progress)
    with open_inputs(inputs) as readers:
        run_pipeline(readers, [branch])
    return branch.results
