"""The one place that maps an engine file to the runner that executes it."""

from __future__ import annotations

from vqa_rt.errors import ModelError
from vqa_rt.runtime.backends.base import Runner


def open_runner(path: str, device: str = "cpu", threads: int = 0) -> Runner:
    """A (not yet activated) runner for ``path``: ONNX files run on ONNX Runtime, TensorRT plans
    (``.plan`` from 'vqa-rt build-engine') on TensorRT, on the GPU whatever ``device`` says."""
    if path.endswith(".plan"):
        from vqa_rt.runtime.backends.tensorrt import TensorRTRunner

        return TensorRTRunner(path)
    if not path.endswith(".onnx"):
        raise ModelError(f"{path}: unsupported engine file; expected an .onnx file from 'vqa-rt export' "
                         "or a .plan from 'vqa-rt build-engine'")
    from vqa_rt.runtime.backends.onnxrt import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, device=device, threads=threads)
