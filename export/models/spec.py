"""One declarative spec per model kind: how to build it, its I/O and how it is validated."""

from __future__ import annotations

import dataclasses
import importlib
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
        """Build the config object, rejecting unknown fields with a clear error."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(f"unknown {self.kind} config field(s): {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        return self.config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def get_spec(kind: str) -> ModelSpec:
    """The spec of a model kind (``fr``, ``nr``, ``qpmap``)."""
    if kind not in _SPEC_MODULES:
        raise ModelError(f"unknown model kind {kind!r}; known: {', '.join(sorted(_SPEC_MODULES))}")
    return importlib.import_module(_SPEC_MODULES[kind]).SPEC
