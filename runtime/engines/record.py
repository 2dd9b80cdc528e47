"""An engine as a user names it, resolved once into one record: a baseline metric (``psnr``, ``ssim``,
``ms-ssim``, ``vmaf``), or a model file (an exported ``.onnx``, or a TensorRT ``.plan`` with its sidecar)
with its vqa-rt metadata. Every consumer (scorers, QP maps, jobs, batches, the server, inspect, the
engine build) takes this record; nothing else looks at a file's name to tell engines apart.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vqa_rt.errors import InputError, ModelError
from vqa_rt.runtime.engines.metadata import (
    ModelInfo,
    metadata_kind,
    model_info,
    plan_sidecar_path,
    read_onnx_metadata,
    read_plan_sidecar,
)
from vqa_rt.runtime.frames.options import EngineSampling

BASELINES = ("psnr", "ssim", "ms-ssim", "vmaf")
BASELINE = "baseline"  # the kind of a baseline metric
PLAN_SUFFIX = ".plan"
ONNX_SUFFIX = ".onnx"
EVERY_FRAME = EngineSampling(frame_stride=1)


@dataclass(frozen=True)
class Engine:
    """A resolved engine: ``name`` as given (a baseline's name or a model file's path), its ``format``
    (``baseline``, ``onnx`` or ``plan``), a model's metadata (``model``) and a plan's sidecar."""

    name: str
    format: str
    model: ModelInfo | None = None
    sidecar: dict[str, Any] | None = None

    @property
    def path(self) -> str:
        """The model file (a baseline's name for a baseline)."""
        return self.name

    @property
    def files(self) -> list[str]:
        """The files the engine is read from: none for a baseline; the model file, and a plan's sidecar."""
        if self.model is None:
            return []
        return [self.name] + ([plan_sidecar_path(self.name)] if self.format == "plan" else [])

    @property
    def kind(self) -> str:
        """The model's kind (``fr``, ``nr``, ``qpmap``), or ``baseline``."""
        return BASELINE if self.model is None else self.model.kind

    @property
    def column(self) -> str:
        """A short name for the engine's results: the baseline's name, or the model file's stem."""
        return self.name if self.model is None else os.path.splitext(os.path.basename(self.name))[0]

    @property
    def takes_reference(self) -> bool:
        """Whether the engine scores a distorted video against its reference (not an NR model)."""
        return self.kind != "nr"

    @property
    def untrained(self) -> bool:
        return self.model is not None and self.model.untrained

    @property
    def default_sampling(self) -> EngineSampling:
        """The frames the engine takes unless told otherwise: what the model's metadata names, else every frame."""
        named = (self.model.preprocess.get("sampling") if self.model is not None else None) or {}
        return EngineSampling(**named) if named else EVERY_FRAME

    def check_frame_size(self, width: int, height: int, hint: str = "") -> None:
        """:class:`InputError` when frames of ``width`` x ``height`` are below the model's minimum size."""
        minimum = self.model.min_size if self.model is not None else 1
        if min(width, height) < minimum:
            raise InputError(f"{self.name}: frames of {width}x{height} are below the model's minimum of {minimum} "
                             f"pixels per side{hint}")


def resolve_engine(name: str, kinds: Sequence[str] | None = None) -> Engine:
    """The engine ``name`` stands for, its metadata read and checked; ``kinds`` are the kinds accepted
    (model kinds, and ``baseline`` for the baseline metrics; None: any model)."""
    if name in BASELINES and kinds is not None and BASELINE in kinds:
        return Engine(name, BASELINE)
    if name.endswith(PLAN_SUFFIX):
        file_format, sidecar = "plan", read_plan_sidecar(name)
        metadata = sidecar["metadata"]
    elif name.endswith(ONNX_SUFFIX) or os.path.exists(name):
        file_format, sidecar, metadata = "onnx", None, read_onnx_metadata(name)
    else:
        raise ModelError(_unknown(name, kinds))
    kind = metadata_kind(name, metadata)
    models = [k for k in kinds or () if k != BASELINE]
    if kinds is not None and kind not in models:
        raise ModelError(f"{name}: is a {kind!r} model, not a " + " or a ".join(f"{k!r} model" for k in models))
    engine = Engine(name, file_format, model_info(name, metadata), sidecar)
    try:
        engine.default_sampling  # noqa: B018 - checks the sampling the metadata names (EngineSampling's fields)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{name}: bad frame sampling in its vqa-rt metadata ({exc})") from None
    return engine


def _unknown(name: str, kinds: Sequence[str] | None) -> str:
    text = (f"unknown engine {name!r}: give a model file (.onnx from 'vqa-rt export', or .plan from "
            "'vqa-rt build-engine')")
    return text + (f" or a baseline: {', '.join(BASELINES)}" if kinds is not None and BASELINE in kinds else "")
