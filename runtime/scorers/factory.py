"""Engines by name: an exported FR or NR model (a ``.onnx`` or TensorRT ``.plan`` path) or a baseline metric.

:func:`check_engine` validates the name before any video is opened (so a bad engine
fails before anything is read or written); :func:`make_scorer` builds the scorer once
the videos' formats are known.
"""

from __future__ import annotations

import os

from vqa_rt.errors import ModelError
from vqa_rt.runtime.scorers.fr_gpu import GpuEngineScorer
from vqa_rt.runtime.engines.metadata import ModelInfo, read_model_info
from vqa_rt.runtime.scorers.nr import NRScorer
from vqa_rt.runtime.scorers.base import EngineScorer, FrameScorer
from vqa_rt.runtime.frames.video import VideoFormat

LUMA_BASELINES = ("psnr", "ssim", "ms-ssim")
BASELINES = (*LUMA_BASELINES, "vmaf")
MODEL_SCORERS = {"fr": EngineScorer, "nr": NRScorer}  # model kind -> its scorer


def check_engine(engine: str) -> ModelInfo | None:
    """The model's metadata for an FR or NR model file, None for a baseline; raises if ``engine`` is neither.

    For ``vmaf`` this also checks that an ffmpeg with libvmaf is available.
    """
    if engine == "vmaf":
        from vqa_rt.runtime.scorers.baselines.vmaf import find_vmaf_ffmpeg

        find_vmaf_ffmpeg()
        return None
    if engine in LUMA_BASELINES:
        return None
    if engine.endswith((".onnx", ".plan")) or os.path.exists(engine):
        return read_model_info(engine, expected_kind=tuple(MODEL_SCORERS))
    raise ModelError(f"unknown engine {engine!r}: give an FR or NR model (.onnx from 'vqa-rt export fr|nr', "
                     "or .plan from 'vqa-rt build-engine') "
                     f"or a baseline: {', '.join(BASELINES)}")


def takes_reference(info: ModelInfo | None) -> bool:
    """Whether the engine :func:`check_engine` described scores against a reference video."""
    return info is None or MODEL_SCORERS[info.kind].takes_reference


def engine_column(engine: str) -> str:
    """A short name for an engine's results: the baseline's name, or the model file's stem."""
    return engine if engine in BASELINES else os.path.splitext(os.path.basename(engine))[0]


def model_scorer_class(info: ModelInfo) -> type[FrameScorer]:
    """The scorer for a model file: for an FR TensorRT plan :class:`GpuEngineScorer` (pre-processing on
    the GPU); otherwise ``MODEL_SCORERS[kind]`` (NR plans keep the NR scorer's CPU pre-processing)."""
    if info.kind == "fr" and info.path.endswith(".plan"):
        return GpuEngineScorer
    return MODEL_SCORERS[info.kind]


def make_scorer(engine: str, info: ModelInfo | None, options, formats: tuple[VideoFormat, ...],
                device: str = "cpu", threads: int = 0) -> FrameScorer:
    """The (not yet entered) scorer for ``engine``; ``info`` is what :func:`check_engine` returned.
    ``formats`` are those of the reference and distorted videos, or of the one video for NR.

    Baselines run on the CPU whatever ``device`` says; ``threads`` sizes ONNX Runtime and libvmaf.
    """
    if info is not None:
        return model_scorer_class(info)(info, options, formats, device=device, threads=threads)
    if engine == "vmaf":
        from vqa_rt.runtime.scorers.baselines.vmaf import VmafScorer

        return VmafScorer(options, formats, threads=threads)
    from vqa_rt.runtime.scorers.baselines.luma import LumaMetricScorer

    return LumaMetricScorer(engine, options, formats)
