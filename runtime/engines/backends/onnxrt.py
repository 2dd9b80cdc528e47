"""ONNX Runtime runner: CPU provider by default, CUDA provider where installed.

ONNX Runtime comes from one of two wheels, never both in one environment: ``onnxruntime`` (CPU:
``pip install 'vqa-rt[cpu]'``) or ``onnxruntime-gpu`` (CPU and CUDA: ``pip install 'vqa-rt[gpu]'``).
It is imported when a runner is made, so a missing one is a clear error, not an import failure.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx

from vqa_rt.errors import BackendUnavailableError, ModelError
from vqa_rt.runtime.engines.backends.base import Runner, TensorInfo
from vqa_rt.runtime.engines.backends.unsigned_qdq import cpu_model

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
}


INSTALL_HINT = ("pip install 'vqa-rt[cpu]', or 'vqa-rt[gpu]' on a machine with an NVIDIA GPU (one of the two: "
                "ONNX Runtime's CPU and GPU wheels cannot share an environment)")


def import_onnxruntime():
    """The ``onnxruntime`` module, or :class:`BackendUnavailableError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(f"ONNX Runtime is not installed ({exc}); {INSTALL_HINT}") from None
    return onnxruntime


def _info(arg: Any) -> TensorInfo:
    """The metadata of an ``onnxruntime.NodeArg``."""
    shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
    return TensorInfo(arg.name, np.dtype(_ORT_TYPES.get(arg.type, np.float32)), shape)


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX file with ONNX Runtime.

    ``device`` is ``"cpu"`` or ``"cuda"``; ``threads`` sets intra-op threads (0:
    ONNX Runtime's default, one per physical core). On the CPU, int8 Q/DQ activations
    run as their exact unsigned equivalent (see :mod:`.unsigned_qdq`). ``rewrite``, if given,
    transforms the graph in memory before the session is made (the FR ladder graph).
    """

    thread_safe = True  # InferenceSession.run may be called concurrently

    def __init__(self, path: str, device: str = "cpu", threads: int = 0, optimize: bool = True,
                 rewrite: Callable[[onnx.ModelProto], onnx.ModelProto] | None = None):
        super().__init__()
        self.ort = ort = import_onnxruntime()
        if device not in PROVIDERS:
            raise BackendUnavailableError(f"unknown ONNX Runtime device {device!r}; choose from {', '.join(PROVIDERS)}")
        if PROVIDERS[device] not in ort.get_available_providers():
            raise BackendUnavailableError(
                f"ONNX Runtime has no {PROVIDERS[device]} here (pip install 'vqa-rt[gpu]' in an environment without "
                "the CPU wheel, on a machine with an NVIDIA driver)"
            )
        self.path, self.device, self.threads, self.optimize, self.rewrite = path, device, threads, optimize, rewrite
        self.name = f"onnxruntime-{device}"
        self._session = None
        self._inputs: list[TensorInfo] = []
        self._outputs: list[TensorInfo] = []

    def _activate(self) -> None:
        ort = self.ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        if not self.optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            model = cpu_model(self.path) if self.device == "cpu" else self.path
            if self.rewrite is not None:
                loaded = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
                model = self.rewrite(loaded).SerializeToString()
            self._session = ort.InferenceSession(model, options, providers=[PROVIDERS[self.device]])
        except ModelError:
            raise
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ModelError(f"{self.path}: ONNX Runtime cannot load this model: {str(exc).splitlines()[0]}") from None
        self._inputs = [_info(arg) for arg in self._session.get_inputs()]
        self._outputs = [_info(arg) for arg in self._session.get_outputs()]

    def _deactivate(self) -> None:
        self._session = None

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [info.name for info in self._outputs]
        return dict(zip(names, self._session.run(names, feed)))

    def input_metadata(self) -> list[TensorInfo]:
        return list(self._inputs)

    def output_metadata(self) -> list[TensorInfo]:
        return list(self._outputs)
