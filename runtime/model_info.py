"""Reads the ``vqa_rt.*`` metadata that export embeds in an ONNX file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import onnx

from vqa_rt.errors import ModelError

_PREFIX = "vqa_rt."


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


def read_model_info(path: str, expected_kind: str | None = None) -> ModelInfo:
    """Parse the metadata of an exported model; check its kind if ``expected_kind`` is given."""
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception:  # protobuf raises DecodeError and others for corrupt files
        raise ModelError(f"{path}: not a valid ONNX model (cannot be parsed)") from None
    metadata = {}
    for prop in proto.metadata_props:
        if prop.key.startswith(_PREFIX):
            try:
                metadata[prop.key[len(_PREFIX):]] = json.loads(prop.value)
            except json.JSONDecodeError:
                raise ModelError(f"{path}: metadata entry {prop.key!r} is not valid JSON") from None
    if "kind" not in metadata or not proto.graph.node:
        raise ModelError(f"{path}: not a vqa-rt model (no vqa_rt.kind metadata); export it with 'vqa-rt export'")
    if expected_kind is not None and metadata["kind"] != expected_kind:
        raise ModelError(f"{path}: is a {metadata['kind']!r} model, not a {expected_kind!r} model")
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
