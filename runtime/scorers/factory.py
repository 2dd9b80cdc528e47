"""The scorer an engine needs: an FR or NR model file (``.onnx``, or a TensorRT ``.plan``) or a baseline metric.

:func:`scoring_engine` resolves and checks the engine before any video is opened (so a bad engine
fails before anything is read or written); :func:`make_scorer` builds its scorer once the videos'
formats are known.
"""

from __future__ import annotations

from vqa_rt.runtime.engines.record import BASELINE, Engine, resolve_engine
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.video import VideoFormat
from vqa_rt.runtime.scorers.base import FrameScorer
from vqa_rt.runtime.scorers.baselines.luma import LumaMetricScorer
from vqa_rt.runtime.scorers.baselines.vmaf import VmafScorer, find_vmaf_ffmpeg
from vqa_rt.runtime.scorers.fr import FRScorer
from vqa_rt.runtime.scorers.fr_gpu import GpuFRScorer
from vqa_rt.runtime.scorers.nr import NRScorer

SCORING_KINDS = ("fr", "nr", BASELINE)


def scoring_engine(name: str) -> Engine:
    """The engine ``name`` stands for, checked to be one that scores: an FR or NR model, or a baseline
    (for ``vmaf``, an ffmpeg with libvmaf must be available)."""
    engine = resolve_engine(name, SCORING_KINDS)
    if engine.name == "vmaf":
        find_vmaf_ffmpeg()
    return engine


def scorer_class(engine: Engine) -> type[FrameScorer]:
    """The scorer of a scoring engine. FR plans get :class:`GpuFRScorer` (pre-processing on the GPU); NR
    plans keep the NR scorer's CPU pre-processing."""
    if engine.kind == "fr":
        return GpuFRScorer if engine.format == "plan" else FRScorer
    if engine.kind == "nr":
        return NRScorer
    return VmafScorer if engine.name == "vmaf" else LumaMetricScorer


def make_scorer(engine: Engine, options: FrameOptions, formats: tuple[VideoFormat, ...], device: str = "cpu",
                threads: int = 0) -> FrameScorer:
    """The (not yet entered) scorer for a scoring engine. ``formats`` are those of the reference and
    distorted videos, or of the one video for NR. ``device`` picks ONNX Runtime's provider (plans run on
    the GPU, baselines on the CPU); ``threads`` sizes ONNX Runtime and libvmaf."""
    return scorer_class(engine)(engine, options, formats, device=device, threads=threads)
