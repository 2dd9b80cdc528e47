"""The one place that maps an engine file to the runner that executes it."""

from __future__ import annotations

from vqa_rt.errors import ModelError
from vqa_rt.runtime.backends.base import Runner

def open_runner(path: str, device: str = "cpu", threads: int = 0) -> Runner:
    """A (not yet activated) runner for ``path``: ONNX files run on ONNX Runtime."""
    if not path.endswith(".onnx"):
        raise ModelError(f"{path}: unsupported engine file; expected an .onnx file from 'vqa-rt export'")
    from vqa_rt.runtime.backends.onnxrt import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, device=device, threads=threads)
