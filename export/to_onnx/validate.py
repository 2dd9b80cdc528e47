"""Validation of an exported ONNX file against its PyTorch reference.

Checks run in a fixed order and raise typed errors: output names, dynamic axes,
output shapes, output values. ONNX Runtime runs with graph optimisation off so
the oracle itself is not transformed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import torch

from vqa_rt.errors import OutputNamesMismatch, OutputShapeMismatch, OutputValuesMismatch
from vqa_rt.export.models.checkpoint import LoadedModel
from vqa_rt.export.models.spec import ModelSpec
from vqa_rt.runtime.engines.backends.onnxrt import import_onnxruntime


@dataclass
class ValidationReport:
    """Worst relative error per output, per validated (batch, height, width)."""

    rtol: float
    max_rel_error: dict[tuple[int, int, int], dict[str, float]] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [
            f"batch {n} at {h}x{w}: " + ", ".join(f"{name} {err:.2e}" for name, err in errors.items())
            for (n, h, w), errors in self.max_rel_error.items()
        ]
        return f"max relative error (tolerance {self.rtol:.0e}) for " + "; ".join(parts)


def relative_error(actual: np.ndarray, expected: np.ndarray, per_row: bool = False) -> float:
    """max |actual - expected| / max(|expected|, tiny), elementwise; with ``per_row`` the denominator
    is the largest |expected| of each row (last axis), for outputs such as logits where a value
    near zero makes an elementwise ratio meaningless."""
    magnitude = np.abs(expected)
    if per_row:
        magnitude = np.broadcast_to(magnitude.max(axis=-1, keepdims=True), magnitude.shape)
    denominator = np.maximum(magnitude, np.finfo(np.float32).tiny)
    return float(np.max(np.abs(actual.astype(np.float64) - expected) / denominator))


def oracle_session(path: str):
    """An ONNX Runtime CPU session with every graph optimisation disabled."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _as_tuple(outputs) -> tuple:
    """A model's outputs as a tuple (a single-output model returns a bare tensor)."""
    return outputs if isinstance(outputs, (tuple, list)) else (outputs,)


def _check_dynamic_axes(spec: ModelSpec, path: str) -> None:
    graph = onnx.load(path, load_external_data=False).graph
    inputs = {value.name: value for value in graph.input}
    for name, axes in spec.dynamic_axes.items():
        dims = inputs[name].type.tensor_type.shape.dim
        static = [axis for axis in axes if dims[axis].HasField("dim_value")]
        if static:
            raise OutputShapeMismatch(f"{path}: input {name!r} axes {static} were exported static, expected dynamic")


def validate_onnx(spec: ModelSpec, loaded: LoadedModel, path: str, seed: int = 1234) -> ValidationReport:
    """Compare ONNX Runtime with PyTorch on fresh random inputs for every validation case."""
    session = oracle_session(path)
    names = [output.name for output in session.get_outputs()]
    if names != list(spec.output_names):
        raise OutputNamesMismatch(f"{path}: outputs {names}, expected {list(spec.output_names)}")
    _check_dynamic_axes(spec, path)
    report = ValidationReport(rtol=spec.rtol)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for batch, height, width in spec.validation_cases(loaded.config):
            inputs = spec.example_inputs(loaded.config, batch, height, width)
            with torch.no_grad():
                expected = [t.numpy() for t in _as_tuple(loaded.model(*inputs))]
            actual = session.run(None, {n: t.numpy() for n, t in zip(spec.input_names, inputs)})
            errors = {}
            for name, got, want in zip(names, actual, expected):
                if got.shape != want.shape:
                    raise OutputShapeMismatch(
                        f"{path}: output {name!r} for batch {batch} at {height}x{width} has shape {got.shape}, "
                        f"PyTorch {want.shape}"
                    )
                errors[name] = relative_error(got, want, per_row=name in spec.row_relative_outputs)
                if errors[name] > spec.rtol:
                    raise OutputValuesMismatch(
                        f"{path}: output {name!r} for batch {batch} at {height}x{width} differs from PyTorch: "
                        f"max relative error {errors[name]:.2e} > {spec.rtol:.0e}"
                    )
            report.max_rel_error[(batch, height, width)] = errors
    finally:
        torch.random.set_rng_state(generator_state)
    return report
