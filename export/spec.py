"""One declarative spec per model kind: how to build it, its I/O and how it is validated."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from vqa_rt.errors import ModelError

# Model kind -> module defining ``SPEC``. Modules import torch, so they load lazily.
_SPEC_MODULES = {"fr": "vqa_rt.export.fr_model", "qpmap": "vqa_rt.export.qpmap_model"}


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

    def config_from_dict(self, values: dict[str, Any] | None):
        """Build the config object, rejecting unknown fields with a clear error."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(f"unknown {self.kind} config field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return self.config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def get_spec(kind: str) -> ModelSpec:
    """The spec of a model kind (``fr``, ``qpmap``)."""
    if kind not in _SPEC_MODULES:
        raise ModelError(f"unknown model kind {kind!r}; known: {', '.join(sorted(_SPEC_MODULES))}")
    return importlib.import_module(_SPEC_MODULES[kind]).SPEC
