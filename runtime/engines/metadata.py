"""Reads the ``vqa_rt.*`` metadata that export embeds in an ONNX file, or that
``vqa-rt build-engine`` copies into a TensorRT plan's sidecar (``fr.plan.json``)."""

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
PLAN_SUFFIX = ".plan"
PLAN_FORMAT = "vqa-rt-plan"  # the sidecar's "format"; "format_version" is bumped on incompatible changes
PLAN_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelInfo:
    """What a runtime needs to feed a vqa-rt model and read its outputs."""

    path: str
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
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{sidecar}: cannot read the plan's sidecar ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise ModelError(f"{sidecar}: not a vqa-rt plan sidecar (no \"format\": \"{PLAN_FORMAT}\")")
    if data.get("format_version") != PLAN_FORMAT_VERSION:
        raise ModelError(f"{sidecar}: sidecar format version {data.get('format_version')!r}, this vqa-rt reads "
                         f"{PLAN_FORMAT_VERSION}; rebuild the plan with 'vqa-rt build-engine'")
    if not isinstance(data.get("metadata"), dict):
        raise ModelError(f"{sidecar}: the sidecar has no model metadata")
    return data


def read_model_info(path: str, expected_kind: str | tuple[str, ...] | None = None) -> ModelInfo:
    """Parse the metadata of an exported model (``.onnx``) or of a plan's sidecar (``.plan``);
    check its kind if ``expected_kind`` (a kind, or several) is given."""
    if path.endswith(PLAN_SUFFIX):
        return _model_info(path, read_plan_sidecar(path)["metadata"], expected_kind)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    st = os.stat(path)
    return _model_info(path, copy.deepcopy(_onnx_file_metadata(path, st.st_mtime_ns, st.st_size)), expected_kind)


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
        if prop.key.startswith(_PREFIX):
            try:
                metadata[prop.key[len(_PREFIX):]] = json.loads(prop.value)
            except json.JSONDecodeError:
                raise ModelError(f"{path}: metadata entry {prop.key!r} is not valid JSON") from None
    return metadata


def _model_info(path: str, metadata: dict[str, Any], expected_kind: str | tuple[str, ...] | None) -> ModelInfo:
    if "kind" not in metadata:
        raise ModelError(f"{path}: not a vqa-rt model (no vqa_rt.kind metadata); export it with 'vqa-rt export'")
    kinds = (expected_kind,) if isinstance(expected_kind, str) else expected_kind
    if kinds is not None and metadata["kind"] not in kinds:
        raise ModelError(f"{path}: is a {metadata['kind']!r} model, not a " + " or a ".join(f"{k!r} model" for k in kinds))
    try:
        return ModelInfo(
            path=path,
            kind=metadata["kind"],
            inputs=list(metadata["inputs"]),
            outputs=list(metadata["outputs"]),
            preprocess=dict(metadata["preprocess"]),
            score_scale=dict(metadata["score_scale"]),
            min_size=int(metadata.get("min_size", 1)),
            untrained=bool(metadata.get("untrained", False)),
            metadata=metadata,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: incomplete vqa-rt metadata ({exc})") from None
