"""ONNX Runtime runner: CPU provider by default, CUDA provider where installed."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

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


def _info(arg: ort.NodeArg) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
    return TensorInfo(arg.name, np.dtype(_ORT_TYPES.get(arg.type, np.float32)), shape)


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX file with ONNX Runtime.

    ``device`` is ``"cpu"`` or ``"cuda"``; ``threads`` sets intra-op threads (0:
    ONNX Runtime's default, one per physical core). On the CPU, int8 Q/DQ activations
    run as their exact unsigned equivalent (see :mod:`.unsigned_qdq`).
    """

    thread_safe = True  # InferenceSession.run may be called concurrently

    def __init__(self, path: str, device: str = "cpu", threads: int = 0, optimize: bool = True):
        super().__init__()
        if device not in PROVIDERS:
            raise BackendUnavailableError(f"unknown ONNX Runtime device {device!r}; choose from {', '.join(PROVIDERS)}")
        if PROVIDERS[device] not in ort.get_available_providers():
            raise BackendUnavailableError(
                f"ONNX Runtime has no {PROVIDERS[device]} here (install onnxruntime-gpu and a CUDA driver)"
            )
        self.path, self.device, self.threads, self.optimize = path, device, threads, optimize
        self.name = f"onnxruntime-{device}"
        self._session: ort.InferenceSession | None = None
        self._inputs: list[TensorInfo] = []
        self._outputs: list[TensorInfo] = []

    def _activate(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        if not self.optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            model = cpu_model(self.path) if self.device == "cpu" else self.path
            self._session = ort.InferenceSession(model, options, providers=[PROVIDERS[self.device]])
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
