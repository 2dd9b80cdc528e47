"""One declarative spec per model kind: how to build it, its I/O and how it is validated."""

from __future__ import annotations

import dataclasses
import importlib
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from vqa_rt.errors import ModelError

# Model kind -> module defining ``SPEC``. Modules import torch, so they load lazily.
_SPEC_MODULES = {"fr": "vqa_rt.export.models.fr", "qpmap": "vqa_rt.export.models.qpmap",
                 "nr": "vqa_rt.export.models.nr_spec"}


@dataclass(frozen=True)
class ModelSpec:
    """Everything generic code needs to know about one model kind."""

    kind: str
    description: str
    config_cls: type
    build: Callable[[Any], Any]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]
    example_inputs: Callable[[Any, int, int, int], tuple]
    validation_sizes: tuple[tuple[int, int], ...]
    min_size: int
    rtol: float
    preprocess: dict[str, Any]
    score_scale: dict[str, Any]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # named configs (``--config tiny``)
    input_size: Callable[[Any], tuple[int, int]] | None = None  # (height, width) of a fixed-size input
    validation_batches: tuple[int, ...] = (2,)
    row_relative_outputs: tuple[str, ...] = ()  # outputs validated relative to each row's largest value
    # Metadata entries that depend on the config; they replace the generic ones of the same name.
    config_metadata: Callable[[Any], dict[str, Any]] | None = None
    # Loads a checkpoint directory (path, config or None) -> LoadedModel, for kinds whose checkpoints are folders.
    load_directory: Callable[[str, Any], Any] | None = None
    # Lowest ONNX opset the model exports at: the exporter's own (lower ones go through ONNX's version converter,
    # which these graphs do not pass), or what its ops need (DeformConv: 19).
    min_opset: int = 18
    min_opset_reason: str = ""
    # Trained weights in export/models/weights/ that load when no checkpoint is given (None: none ship).
    shipped_weights: str | None = None

    def validation_cases(self, config) -> list[tuple[int, int, int]]:
        """(batch, height, width) of every validation run: each batch at each size (the fixed size, if any)."""
        sizes = [self.input_size(config)] if self.input_size else list(self.validation_sizes)
        return [(batch, height, width) for height, width in sizes for batch in self.validation_batches]

    def config_from_preset(self, name: str):
        """The config of a named preset."""
        if name not in self.presets:
            known = ", ".join(self.presets) or "none"
            raise ModelError(f"{self.kind} has no config preset {name!r} (presets: {known}; or give a JSON file)")
        return self.config_from_dict(self.presets[name])

    def config_from_dict(self, values: dict[str, Any] | None):
        """Build the config object, rejecting unknown fields and values of the wrong type with a clear error."""
        if values is not None and not isinstance(values, dict):
            raise ModelError(f"a {self.kind} config must be a JSON object of fields, got {type(values).__name__}")
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(f"unknown {self.kind} config field(s): {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        types = typing.get_type_hints(self.config_cls)
        for name, value in values.items():
            check_field(f"{self.kind} config field {name!r}", value, types[name])
        try:
            return self.config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        except (ValueError, TypeError, ZeroDivisionError) as exc:
            raise ModelError(f"bad {self.kind} config: {str(exc).splitlines()[0]}") from None

    def build_model(self, config):
        """The model of ``config``; a config the architecture cannot take is a :class:`ModelError`."""
        try:
            return self.build(config)
        except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as exc:
            raise ModelError(f"the {self.kind} config does not make a model: {str(exc).splitlines()[0]}") from None


def check_field(what: str, value: Any, kind: Any, minimum: int = 1) -> None:
    """Raise :class:`ModelError` unless ``value`` (as read from JSON) fits the type ``kind``: int (whole, not a
    boolean, ``minimum`` or more: sizes and counts are 1 or more, items of a list 0 or more), float (finite),
    str, bool, and tuples of those (a JSON list; ``tuple[X, ...]`` any length, else exactly as many)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ModelError(f"{what} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(value) != len(args):
            raise ModelError(f"{what} must be a list of {len(args)}, got {len(value)}: {value!r}")
        for item, item_kind in zip(value, args):
            check_field(what, item, item_kind, minimum=0)
        return
    if kind is bool:
        fits = isinstance(value, bool)
    elif kind is int:
        fits = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    elif kind is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif kind is str:
        fits = isinstance(value, str)
    else:
        return  # a type these checks do not know: the config class checks it
    if not fits:
        wanted = {bool: "true or false", int: f"a whole number, {minimum} or more", float: "a finite number",
                  str: "a string"}[kind]
        raise ModelError(f"{what} must be {wanted}, got {value!r}")


def get_spec(kind: str) -> ModelSpec:
    """The spec of a model kind (``fr``, ``nr``, ``qpmap``)."""
    if kind not in _SPEC_MODULES:
        raise ModelError(f"unknown model kind {kind!r}; known: {', '.join(sorted(_SPEC_MODULES))}")
    return importlib.import_module(_SPEC_MODULES[kind]).SPEC
