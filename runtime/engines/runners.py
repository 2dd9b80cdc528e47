"""The one place that maps an engine to the runner that executes it, and keeps runners warm."""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import numpy as np

from vqa_rt.runtime.engines.backends.base import Runner, TensorInfo
from vqa_rt.runtime.engines.record import Engine

_warm: dict[tuple[str, str, int], SharedRunner] | None = None  # set while warm_runners() is active
_warm_lock = threading.Lock()


def _new_runner(engine: Engine, device: str, threads: int) -> Runner:
    if engine.format == "plan":
        from vqa_rt.runtime.engines.backends.tensorrt import TensorRTRunner

        return TensorRTRunner(engine.path, sidecar=engine.sidecar)
    if engine.format != "onnx":
        raise ValueError(f"{engine.name}: a {engine.kind} engine has no runner")
    from vqa_rt.runtime.engines.backends.onnxrt import OnnxRuntimeRunner

    return OnnxRuntimeRunner(engine.path, device=device, threads=threads)


def open_runner(engine: Engine, device: str = "cpu", threads: int = 0) -> Runner:
    """A (not yet activated) runner for a model engine: ONNX files run on ONNX Runtime, TensorRT plans
    on TensorRT, on the GPU whatever ``device`` says.

    Inside :func:`warm_runners`, the runner is a :class:`SharedRunner` over one runner per
    (file, device, threads), activated the first time and kept until the block ends.
    """
    if _warm is None:
        return _new_runner(engine, device, threads)
    key = (engine.path, device, threads)
    with _warm_lock:
        if key not in _warm:
            _warm[key] = SharedRunner(_new_runner(engine, device, threads).activate())
        return _warm[key]


def preload(engines: list[Engine | None], device: str, threads: int) -> None:
    """Open every model engine once (inside :func:`warm_runners`) so the first job does not pay for it."""
    for engine in engines:
        if engine is not None and engine.model is not None:
            open_runner(engine, device=device, threads=threads)


@contextlib.contextmanager
def warm_runners() -> Iterator[None]:
    """Keep every runner opened in the block loaded until it ends (``vqa-rt serve``: jobs skip model loading)."""
    global _warm
    with _warm_lock:
        if _warm is not None:
            raise RuntimeError("warm_runners() is already active")
        _warm = {}
    try:
        yield
    finally:
        with _warm_lock:
            runners, _warm = list(_warm.values()), None
        for shared in runners:
            shared.inner.deactivate()


class SharedRunner(Runner):
    """An active runner shared by concurrent jobs: activation belongs to :func:`warm_runners`, and
    ``infer`` is serialised unless the backend is thread-safe."""

    def __init__(self, runner: Runner):
        super().__init__()
        self.inner, self.name, self.is_active = runner, runner.name, True
        self._lock = contextlib.nullcontext() if runner.thread_safe else threading.Lock()

    def activate(self) -> SharedRunner:
        return self

    def deactivate(self) -> None:
        pass

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            return self.inner.infer(feed)

    def input_metadata(self) -> list[TensorInfo]:
        return self.inner.input_metadata()

    def output_metadata(self) -> list[TensorInfo]:
        return self.inner.output_metadata()

    def _activate(self) -> None:
        pass

    def _deactivate(self) -> None:
        pass
