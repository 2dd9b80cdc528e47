"""One encoder-farm job in one pass: FR, NR and QP maps from a source and its reconstruction.

:func:`run_job` reads each input once and fans the frames out to the engines asked for
(see :mod:`.fanout`): FR scores of (source, distorted) pairs, NR scores of the
distorted video, QP maps of the source. Into an output directory it writes what
``score`` and ``qpmap`` write (``fr.json``/``fr.csv``, ``nr.json``/``nr.csv``,
``qpmap.<ext>`` + ``qpmap.json``) and a run summary (``run.json``); per-frame results can
also go out as JSON lines, one per frame, as soon as every engine that took the frame
has its result. ``vqa-rt serve`` runs the same jobs on engines it keeps loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, TextIO

import vqa_rt
from vqa_rt.errors import InputError
from vqa_rt.runtime.engines.record import Engine, resolve_engine
from vqa_rt.runtime.frames.options import EngineSampling, FrameOptions
from vqa_rt.runtime.frames.sources import VideoInput, check_stdin, open_inputs
from vqa_rt.runtime.frames.video import VideoReader
from vqa_rt.runtime.outputs import check_output_paths, render_json, write_atomic
from vqa_rt.runtime.pipeline.fanout import Branch, check_selections, run_pipeline
from vqa_rt.runtime.pipeline.qpmap import QPMapBranch, check_method, map_file_sink
from vqa_rt.runtime.pipeline.score import ScoreBranch, check_reference, score_outputs
from vqa_rt.runtime.qpmaps.conversion import QPConversion
from vqa_rt.runtime.qpmaps.formats import SUMMARY_ONLY, check_format
from vqa_rt.runtime.scorers.factory import scoring_engine

MAP_EXTENSIONS = {"npy": "npy", "csv": "csv", "x265": "bin", "kvazaar": "txt", "kvazaar-bin": "bin"}
SUMMARY_NAME = "run.json"


@dataclass(frozen=True)
class JobEngines:
    """What to run: an FR engine (model or baseline), an NR model, QP maps (a model, or ``activity``)."""

    fr: str | None = None
    nr: str | None = None
    qpmap: str | None = None
    qp_method: str = "model"

    @property
    def maps(self) -> bool:
        return self.qpmap is not None or self.qp_method == "activity"

    def roles(self) -> tuple[str, ...]:
        """The videos the job reads: ``reference`` (the source) and/or ``distorted`` (the reconstruction)."""
        needs = {"reference"} if self.fr or self.maps else set()
        needs |= {"distorted"} if self.fr or self.nr else set()
        return tuple(role for role in ("reference", "distorted") if role in needs)


@dataclass(frozen=True)
class JobOptions:
    """How frames are read and converted for every engine (``frames``: its ``max_frames`` caps the frames
    read from the inputs, not the frames each engine takes), which frames the FR and the NR engine take
    (``fr``, ``nr``; none chosen: the engine's default, FR every frame, NR 1 frame per second; QP maps
    take every frame, at the video's own size), and how QP maps are made and written."""

    frames: FrameOptions = FrameOptions()
    fr: EngineSampling = EngineSampling()
    nr: EngineSampling = EngineSampling()
    conversion: QPConversion = QPConversion()
    map_format: str = "npy"

    def __post_init__(self) -> None:
        if self.frames.engine_sampling.chosen:
            raise InputError("a job's frame sampling is per engine (fr, nr: --fr-stride, --nr-fps, --nr-stride), "
                             "not for all its engines")


def check_job(engines: JobEngines, options: JobOptions, inputs: dict[str, VideoInput]) -> dict[str, Engine | None]:
    """Validate the engines and that the inputs they need are given; the resolved engines by branch name
    (None for QP maps by activity)."""
    if not (engines.fr or engines.nr or engines.maps):
        raise InputError("nothing to run: give --fr, --nr and/or --qpmap (or --qp-method activity)")
    missing = [role for role in engines.roles() if role not in inputs]
    if missing:
        users = {"reference": "FR scores and QP maps", "distorted": "FR and NR scores"}
        raise InputError("; ".join(f"{users[role]} need the {'source' if role == 'reference' else 'distorted'} "
                                   f"video (--{'source' if role == 'reference' else 'distorted'})"
                                   for role in missing))
    check_stdin({role: inputs[role] for role in engines.roles()})
    resolved: dict[str, Engine | None] = {}
    if engines.fr:
        resolved["fr"] = scoring_engine(engines.fr)
        if resolved["fr"].kind == "nr":
            raise InputError(f"--fr {engines.fr}: is a 'nr' model, not an FR model")
        check_reference(resolved["fr"], inputs["reference"])
    if engines.nr:
        resolved["nr"] = resolve_engine(engines.nr, ("nr",))
    if engines.maps:
        resolved["qpmap"] = check_method(engines.qpmap, engines.qp_method)
        check_format(options.map_format, f"qpmap.{MAP_EXTENSIONS.get(options.map_format, 'json')}",
                     options.conversion.grid)
    return resolved


def _branches(engines: JobEngines, options: JobOptions, inputs: dict[str, VideoInput],
              resolved: dict[str, Engine | None], output_dir: str | None, device: str, threads: int,
              map_lines: bool) -> list[Branch]:
    def path(name: str) -> str | None:
        return None if output_dir is None else os.path.join(output_dir, name)

    base = replace(options.frames, max_frames=None)  # the inputs are limited when opened
    branches: list[Branch] = []
    for name in ("fr", "nr"):
        if name in resolved:
            engine = resolved[name]
            engine_options = base.with_sampling(getattr(options, name)).with_default_sampling(engine.default_sampling)
            outputs = [] if output_dir is None else score_outputs(path(f"{name}.json"), path(f"{name}.csv"))
            branches.append(ScoreBranch(name, engine, engine_options, inputs=inputs, outputs=outputs, device=device,
                                        threads=threads))
    if engines.maps:
        fmt = options.map_format
        sink = None
        if output_dir is not None and fmt != SUMMARY_ONLY:
            sink = map_file_sink(fmt, path(f"qpmap.{MAP_EXTENSIONS[fmt]}"), options.conversion.base_qp)
        branches.append(QPMapBranch("qpmap", resolved["qpmap"], options.conversion, replace(base, analysis_size=None),
                                    path=inputs["reference"].path, sink=sink, device=device, threads=threads,
                                    line_maps=map_lines))
    return branches


def output_names(engines: JobEngines, options: JobOptions) -> list[str]:
    """The files a job writes in its output folder."""
    names = [f"{name}.{ext}" for name in ("fr", "nr") if getattr(engines, name) for ext in ("json", "csv")]
    if engines.maps:
        names += [f"qpmap.{MAP_EXTENSIONS[options.map_format]}"] if options.map_format != SUMMARY_ONLY else []
        names.append("qpmap.json")
    return names + [SUMMARY_NAME]


def _summary(branch: Branch, seconds: float) -> dict[str, Any]:
    """A branch's entry in the run summary."""
    frames = len(branch.results.get("frames", []))
    return {"frames": frames, "complete": branch.results.get("complete", False),
            "fps": frames / seconds if seconds else None, **branch.run_entry()}


def run_job(engines: JobEngines, inputs: dict[str, VideoInput], options: JobOptions = JobOptions(), *,
            output_dir: str | None = None, on_frame: Callable[[dict[str, Any]], None] | None = None,
            device: str = "cpu", threads: int = 0, readers: dict[str, VideoReader] | None = None,
            map_lines: bool = False) -> dict[str, Any]:
    """Run one job; returns the run summary (also written to ``output_dir/run.json``) with every engine's
    full results under ``results``.

    ``inputs`` are the videos by role (``reference`` = the source, ``distorted`` = the
    reconstruction); ``readers`` may give them already open (``vqa-rt serve`` streams frames
    from a socket). ``on_frame`` gets each frame's merged results (``{"frameNum": i, "fr": ..., "nr": ...,
    "qpmap": ...}``, only the engines that took the frame) in frame order; ``map_lines`` puts each
    frame's whole delta-QP map (rows of integers) in them, not only its statistics. If the run stops early,
    every engine's results so far are written (score files with ``"complete": false``; QP-map files
    only when complete) and the error is raised.
    """
    resolved = check_job(engines, options, inputs)
    if output_dir is not None:
        if os.path.exists(output_dir) and not os.path.isdir(output_dir):
            raise InputError(f"{output_dir}: exists and is not a directory")
    if output_dir is not None and os.path.isdir(output_dir):  # a folder still to be made holds no input
        check_output_paths([os.path.join(output_dir, name) for name in output_names(engines, options)],
                           [path for engine in resolved.values() if engine is not None for path in engine.files]
                           + [inputs[role].path for role in engines.roles()])
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if readers is None:
            readers = stack.enter_context(open_inputs({role: inputs[role] for role in engines.roles()}))
        if options.frames.max_frames is not None:
            for reader in readers.values():
                reader.limit(options.frames.frame_skip + options.frames.max_frames)
        branches = _branches(engines, options, inputs, resolved, output_dir, device, threads, map_lines)
        check_selections(readers, branches)  # e.g. NR's per-second sampling of raw YUV with no --fps: before any write
        if output_dir is not None:
            os.makedirs(output_dir, exist_ok=True)

        def merged(index: int, outputs: dict[str, Any]) -> None:
            if on_frame is not None:
                on_frame({"frameNum": index, **outputs})

        error: BaseException | None = None
        try:
            run_pipeline(readers, branches, merged)
        except BaseException as exc:
            error = exc
        seconds = time.perf_counter() - start
        summary = {
            "version": vqa_rt.__version__,
            "inputs": {role: asdict(video) for role, video in inputs.items() if role in engines.roles()},
            "options": {"frames": asdict(options.frames), "fr": options.fr.as_dict(), "nr": options.nr.as_dict(),
                        "map_format": options.map_format},
            "seconds": seconds,
            "complete": error is None,
            "error": None if error is None else (str(error) or type(error).__name__),
            "engines": {branch.name: _summary(branch, seconds) for branch in branches},
        }
        if output_dir is not None and (error is None or any(b.results.get("frames") for b in branches)):
            write_atomic(os.path.join(output_dir, SUMMARY_NAME), render_json(summary))
            if engines.maps and error is None:
                write_atomic(os.path.join(output_dir, "qpmap.json"), render_json(branches[-1].results))
        if error is not None:
            raise error
    return {**summary, "results": {branch.name: branch.results for branch in branches}}


class JsonLines:
    """Per-frame results as JSON lines on a text stream, flushed line by line."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def __call__(self, frame: dict[str, Any]) -> None:
        self.stream.write(json.dumps(frame) + "\n")
        self.stream.flush()
