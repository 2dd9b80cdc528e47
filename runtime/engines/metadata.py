"""The ``vqa_rt.*`` metadata that export embeds in an ONNX file, or that ``vqa-rt build-engine`` copies into
a TensorRT plan's sidecar (``fr.plan.json``), read and checked (:class:`ModelError` naming the file)."""

from __future__ import annotations

import copy
import functools
import json
import os
from dataclasses import dataclass
from typing import Any

import onnx

from vqa_rt.errors import ModelError

_PREFIX = "vqa_rt."
PLAN_FORMAT = "vqa-rt-plan"  # the sidecar's "format"; "format_version" is bumped on incompatible changes
PLAN_FORMAT_VERSION = 2  # 2: flavour, targets, built_without_gpu, deform, layers


@dataclass(frozen=True)
class ModelInfo:
    """What a runtime needs to feed a vqa-rt model and read its outputs."""

    kind: str
    inputs: list[str]
    outputs: list[str]
    preprocess: dict[str, Any]
    score_scale: dict[str, Any]
    min_size: int
    untrained: bool
    metadata: dict[str, Any]


def plan_sidecar_path(plan: str) -> str:
    """The JSON written beside a plan: ``fr.plan`` -> ``fr.plan.json``."""
    return f"{plan}.json"


def read_plan_sidecar(plan: str) -> dict[str, Any]:
    """The sidecar of a TensorRT plan (model metadata, precision, profile, TensorRT version, GPU, plugins)."""
    if not os.path.isfile(plan):
        raise ModelError(f"{plan}: no such engine file")
    sidecar = plan_sidecar_path(plan)
    try:
        with open(sidecar, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ModelError(f"{plan}: its sidecar {sidecar} is missing (it holds the model's metadata; "
                         "build plans with 'vqa-rt build-engine', which writes both)") from None
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, not UTF-8, a 5000-digit number
        raise ModelError(f"{sidecar}: cannot read the plan's sidecar ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise ModelError(f"{sidecar}: not a vqa-rt plan sidecar (no \"format\": \"{PLAN_FORMAT}\")")
    if data.get("format_version") != PLAN_FORMAT_VERSION:
        raise ModelError(f"{sidecar}: sidecar format version {data.get('format_version')!r}, this vqa-rt reads "
                         f"{PLAN_FORMAT_VERSION}; rebuild the plan with 'vqa-rt build-engine'")
    if not isinstance(data.get("metadata"), dict):
        raise ModelError(f"{sidecar}: the sidecar has no model metadata")
    return data


def read_onnx_metadata(path: str) -> dict[str, Any]:
    """The ``vqa_rt.*`` metadata of an ONNX file (a copy: the parse is cached per version of the file)."""
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    st = os.stat(path)
    return copy.deepcopy(_onnx_file_metadata(path, st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=16)
def _onnx_file_metadata(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """The metadata of an ONNX file, parsed once per version of the file (a server's jobs re-read it)."""
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception:  # protobuf raises DecodeError and others for corrupt files
        raise ModelError(f"{path}: not a valid ONNX model (cannot be parsed)") from None
    if not proto.graph.node:
        raise ModelError(f"{path}: not a vqa-rt model (the graph is empty)")
    return onnx_metadata(proto, path)


def onnx_metadata(proto: onnx.ModelProto, path: str = "model") -> dict[str, Any]:
    """The ``vqa_rt.*`` metadata entries of an ONNX model, prefix removed, values decoded from JSON."""
    metadata = {}
    for prop in proto.metadata_props:
        if not isinstance(prop.key, str):  # protobuf gives bytes for a key that is not UTF-8
            raise ModelError(f"{path}: metadata key {prop.key!r} is not UTF-8 text")
        if prop.key.startswith(_PREFIX):
            try:
                metadata[prop.key[len(_PREFIX):]] = json.loads(prop.value)
            except (ValueError, RecursionError):  # JSONDecodeError, or a number of more digits than int() takes
                raise ModelError(f"{path}: metadata entry {prop.key!r} is not valid JSON") from None
    return metadata


def metadata_kind(path: str, metadata: dict[str, Any]) -> str:
    """The model kind ``metadata`` names (read from ``path``, named in errors)."""
    if "kind" not in metadata:
        raise ModelError(f"{path}: not a vqa-rt model (no vqa_rt.kind metadata); export it with 'vqa-rt export'")
    return metadata["kind"]


def model_info(path: str, metadata: dict[str, Any]) -> ModelInfo:
    """The model described by ``metadata`` (read from ``path``, named in errors)."""
    try:
        return ModelInfo(
            kind=metadata_kind(path, metadata),
            inputs=list(metadata["inputs"]),
            outputs=list(metadata["outputs"]),
            preprocess=dict(metadata["preprocess"]),
            score_scale=dict(metadata["score_scale"]),
            min_size=int(metadata.get("min_size", 1)),
            untrained=bool(metadata.get("untrained", False)),
            metadata=metadata,
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(Infinity)
        raise ModelError(f"{path}: incomplete vqa-rt metadata ({exc})") from None
