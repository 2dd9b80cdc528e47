"""Checkpoints: plain ``state_dict`` files (or, for kinds that read them, checkpoint
directories) in, seeded random-init models for demos and tests.

A checkpoint is either a plain ``state_dict`` (what ``torch.save(model.state_dict())``
writes), a dict ``{"state_dict": ..., "vqa_rt": {...}}`` as written by
:func:`save_checkpoint`, whose ``vqa_rt`` entry records the model kind, config and
whether the weights are untrained, or a ``.safetensors`` file (the same record as JSON in
its ``vqa_rt`` metadata entry, as ``vqa-rt train`` writes). Nothing in a checkpoint runs code
when it loads (``weights_only``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import torch

from vqa_rt.errors import ModelError
from vqa_rt.export.models.spec import ModelSpec

_LISTED_KEYS = 8


@dataclass
class LoadedModel:
    """A model in eval mode, its config and where its weights came from."""

    model: torch.nn.Module
    config: Any
    untrained: bool
    source: str


def random_init(spec: ModelSpec, seed: int, config: Any = None) -> LoadedModel:
    """Build a model with deterministic random weights (untrained)."""
    config = config if config is not None else spec.config_cls()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build_model(config)
    return LoadedModel(model.eval(), config, untrained=True, source=f"random-init seed {seed}")


def save_checkpoint(loaded: LoadedModel, path: str, kind: str) -> None:
    """Write the model's state_dict with vqa-rt's provenance record beside it."""
    meta = {"kind": kind, "config": loaded.config.to_dict(), "untrained": loaded.untrained, "source": loaded.source}
    tmp = f"{path}.tmp"
    torch.save({"state_dict": loaded.model.state_dict(), "vqa_rt": meta}, tmp)
    os.replace(tmp, path)


def _read_safetensors(path: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        from safetensors import safe_open
    except ImportError:
        raise ModelError(f"{path}: reading .safetensors needs safetensors: pip install safetensors") from None
    try:
        with safe_open(path, framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("vqa_rt", "{}"))
            return {key: handle.get_tensor(key) for key in handle.keys()}, meta
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ModelError(f"{path}: not a readable safetensors file ({type(exc).__name__})") from None


def _read(path: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such checkpoint file")
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        return payload["state_dict"], dict(payload.get("vqa_rt") or {})
    if isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return payload, {}
    raise ModelError(f"{path}: expected a state_dict (a dict of tensors) or {{'state_dict': ...}}")


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED_KEYS])
    return shown + (f", ... ({len(keys) - _LISTED_KEYS} more)" if len(keys) > _LISTED_KEYS else "")


def fit_state_dict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str, kind: str,
                   strict: bool = True, assign: bool = False) -> None:
    """Load ``state_dict`` into ``model``. With ``strict`` any missing or unexpected key, and always
    any shape mismatch, is a :class:`ModelError` listing them. ``assign`` takes the tensors as they
    are (for a model built on the meta device)."""
    expected = model.state_dict()
    problems = []
    if strict:
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if missing:
            problems.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_listing(unexpected)}")
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if mismatched:
        problems.append(f"shape mismatches (checkpoint vs model): {_listing(mismatched)}")
    if problems:
        raise ModelError(f"{source}: checkpoint does not fit the {kind} model: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=strict, assign=assign)


def load_checkpoint(spec: ModelSpec, path: str, config: Any = None, strict: bool = True) -> LoadedModel:
    """Load a checkpoint into a freshly built model.

    A directory is loaded by the spec's ``load_directory`` (a Hugging Face checkpoint for
    ``nr``). Otherwise the config comes from ``config`` if given, else from the checkpoint's
    vqa-rt record, else the default; see :func:`fit_state_dict` for ``strict``.
    """
    if os.path.isdir(path):
        if spec.load_directory is None:
            raise ModelError(f"{path}: is a directory; a {spec.kind} checkpoint is a state_dict file")
        return spec.load_directory(path, config)
    state_dict, meta = _read(path)
    if meta.get("kind", spec.kind) != spec.kind:
        raise ModelError(f"{path}: checkpoint is for model kind {meta['kind']!r}, not {spec.kind!r}")
    if config is None:
        config = spec.config_from_dict(meta.get("config"))
    model = spec.build_model(config)
    fit_state_dict(model, state_dict, path, spec.kind, strict)
    return LoadedModel(model.eval(), config, untrained=bool(meta.get("untrained", False)), source=path)


def load_shipped(spec: ModelSpec) -> LoadedModel:
    """The trained weights that ship with vqa-rt for ``spec`` (see its model card)."""
    if spec.shipped_weights is None:
        raise ModelError(f"no trained {spec.kind} weights ship with vqa-rt: give --checkpoint or --random-init")
    path = os.path.join(os.path.dirname(__file__), "weights", spec.shipped_weights)
    loaded = load_checkpoint(spec, path)
    return LoadedModel(loaded.model, loaded.config, loaded.untrained, f"shipped {spec.shipped_weights}")
