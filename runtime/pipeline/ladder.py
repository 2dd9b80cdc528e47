"""Ladder scoring: several distorted renditions of one reference (a CRF sweep, an ABR ladder) in one pass.

The reference is decoded once and every rendition is read beside it (:mod:`.fanout`). An FR ONNX model
scores all renditions of a frame in one call of its ladder graph, the reference's conversion and
features computed once (:class:`LadderBranch`); other engines get one branch per rendition on the
shared decode, the luma baselines sharing what the reference frame alone determines (SSIM's and
MS-SSIM's local means and variances, :class:`SharedReferenceBranch`). Each rendition's results are
what ``score`` gives for that pair alone, written to ``<output dir>/<rendition name>.json`` and ``.csv``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Callable, Iterator

from vqa_rt.errors import InputError
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.sampling import FrameSampling
from vqa_rt.runtime.frames.selection import Step
from vqa_rt.runtime.frames.sources import VideoInput, open_inputs
from vqa_rt.runtime.frames.video import VideoFormat
from vqa_rt.runtime.outputs import check_output_paths
from vqa_rt.runtime.pipeline.fanout import Branch, check_selections, run_pipeline
from vqa_rt.runtime.pipeline.score import (
    ProgressCallback,
    ScoreBranch,
    ScoreRecord,
    check_reference,
    input_files,
    score_outputs,
)
from vqa_rt.runtime.scorers.base import FrameScorer
from vqa_rt.runtime.scorers.baselines.luma import LUMA_METRICS, LumaMetricScorer
from vqa_rt.runtime.scorers.baselines.shared_reference import SharedReference
from vqa_rt.runtime.scorers.factory import scoring_engine
from vqa_rt.runtime.scorers.fr_ladder import LadderFRScorer


class LadderBranch(Branch):
    """An FR ONNX model scoring every rendition of each frame in one call; one :class:`ScoreRecord` per rendition."""

    def __init__(self, engine: Engine, options: FrameOptions, *, inputs: dict[str, VideoInput],
                 records: list[ScoreRecord], device: str = "cpu", threads: int = 0):
        self.name, self.engine, self.options = "ladder", engine, options
        self.roles = tuple(inputs)
        self.inputs, self.records, self.device, self.threads = inputs, records, device, threads
        self.scorer: LadderFRScorer | None = None

    def sampling(self) -> FrameSampling:
        return self.options.sampling()

    @property
    def results(self) -> dict[str, Any]:
        return {"renditions": [record.result for record in self.records]}

    def run_entry(self) -> dict[str, Any]:
        return {"renditions": [record.entry() for record in self.records]}

    def start(self, formats: dict[str, VideoFormat], total: int | None) -> None:
        self.scorer = LadderFRScorer(self.engine, self.options, tuple(formats[role] for role in self.roles),
                                     device=self.device, threads=self.threads, roles=self.roles)
        self.scorer.__enter__()
        reference = self.roles[0]
        for role, record in zip(self.roles[1:], self.records):
            record.begin(self.scorer, self.inputs[reference], self.inputs[role], formats[reference], self.options,
                         total)

    def item(self, step: Step) -> Step:
        return step

    def prepare(self, item: Step) -> Any:
        return self.scorer.prepare(item)

    def infer(self, indices: list[int], prepared: list[Any]) -> list[tuple[int, list[dict[str, float]]]]:
        return list(zip(indices, self.scorer.score_batch(prepared)))

    def record(self, index: int, output: list[dict[str, float]]) -> None:
        for record, metrics in zip(self.records, output):
            record.add(index, metrics)

    def close(self, error: BaseException | None) -> None:
        if self.scorer is not None:
            self.scorer.__exit__(None, None, None)
        for record in self.records:
            record.end(error)


class SharedReferenceBranch(ScoreBranch):
    """One rendition's luma-baseline branch; the reference side of each frame is computed by whichever
    rendition's branch gets to it first (``shared``) and reused by the others."""

    def __init__(self, *args, shared: SharedReference, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared = shared

    def open_scorer(self, formats: tuple[VideoFormat, ...]) -> FrameScorer:
        return LumaMetricScorer(self.engine, self.options, formats, shared=self.shared)


def rendition_names(distorted: list[VideoInput]) -> list[str]:
    """Each rendition's output name: its file name without the extension (unique, else an error)."""
    seen: dict[str, str] = {}
    for video in distorted:
        if video.path == "-":
            raise InputError("ladder renditions are files, not stdin (-)")
        name = os.path.splitext(os.path.basename(video.path))[0]
        if name in seen:
            raise InputError(f"renditions {seen[name]} and {video.path} would both write {name}.json: give them "
                             "different file names")
        seen[name] = video.path
    return list(seen)


def score_ladder(engine: Engine | str, reference: VideoInput, distorted: list[VideoInput],
                 options: FrameOptions = FrameOptions(), *, output_dir: str | None = None, device: str = "cpu",
                 threads: int = 0, progress: ProgressCallback | None = None) -> list[dict[str, Any]]:
    """Score each of ``distorted`` against ``reference`` with an FR engine (model file or baseline), reading the
    reference once; with ``output_dir``, write ``output_dir/<name>.json`` and ``.csv`` per rendition
    (``name``: its file name without the extension). Returns the results, one libvmaf-shaped dict per
    rendition, in order.

    Everything is checked before anything is written; if scoring stops early, every rendition's frames so
    far are written with ``"complete": false`` and the error is raised.
    """
    engine = scoring_engine(engine) if isinstance(engine, str) else engine
    if not engine.takes_reference:
        raise InputError(f"{engine.name}: is a no-reference ({engine.kind}) model; ladder scoring compares "
                         "renditions with their reference: score each with 'vqa-rt score' instead")
    check_reference(engine, reference)
    options = options.with_default_sampling(engine.default_sampling)
    roles = ["reference", *(f"rendition {position + 1}" for position in range(len(distorted)))]
    inputs = dict(zip(roles, [reference, *distorted]))
    outputs = [[] for _ in distorted] if output_dir is None else _outputs(output_dir, engine, inputs)
    if engine.kind == "fr" and engine.format == "onnx":
        records = [ScoreRecord(paths, progress if position == 0 else None) for position, paths in enumerate(outputs)]
        branches: list[Branch] = [LadderBranch(engine, options, inputs=inputs, records=records, device=device,
                                               threads=threads)]
    else:
        branch_class = (functools.partial(SharedReferenceBranch, shared=SharedReference(len(distorted)))
                        if engine.name in LUMA_METRICS else ScoreBranch)
        branches = [branch_class(role, engine, options, inputs=inputs, outputs=paths, device=device, threads=threads,
                                 progress=progress if position == 0 else None, distorted_role=role)
                    for position, (role, paths) in enumerate(zip(roles[1:], outputs))]
    with open_inputs(inputs) as readers:
        check_selections(readers, branches)  # e.g. a rendition that does not pair with the reference
        with contextlib.nullcontext() if output_dir is None else _folder(output_dir):
            run_pipeline(readers, branches)
    if isinstance(branches[0], LadderBranch):
        return branches[0].results["renditions"]
    return [branch.results for branch in branches]


def _outputs(output_dir: str, engine: Engine, inputs: dict[str, VideoInput]) -> list[list[tuple[str, Callable]]]:
    """Each rendition's result files in ``output_dir`` (checked: unique, no input overwritten)."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise InputError(f"{output_dir}: exists and is not a directory")
    names = rendition_names(list(inputs.values())[1:])
    outputs = [score_outputs(*(os.path.join(output_dir, f"{name}.{ext}") for ext in ("json", "csv")))
               for name in names]
    if os.path.isdir(output_dir):  # a folder still to be made holds no input
        check_output_paths([path for paths in outputs for path, _ in paths], input_files(engine, inputs))
    return outputs


@contextlib.contextmanager
def _folder(path: str) -> Iterator[None]:
    """``path`` made if missing, and removed again if the block fails before writing anything in it."""
    made = not os.path.isdir(path)
    os.makedirs(path, exist_ok=True)
    try:
        yield
    except BaseException:
        if made and not os.listdir(path):
            os.rmdir(path)
        raise
