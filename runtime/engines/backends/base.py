"""The one runner interface every backend implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """Name, element type and shape of a model input or output (None or a name for dynamic axes)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | str | None, ...]


class Runner(abc.ABC):
    """activate() / infer(feed) -> outputs / deactivate(); also a context manager."""

    name: str = "runner"
    thread_safe: bool = False  # whether infer() may be called from several threads at once

    def __init__(self) -> None:
        self.is_active = False

    def activate(self) -> Runner:
        """Load the model and allocate what inference needs. Idempotent."""
        if not self.is_active:
            self._activate()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        """Release what :meth:`activate` allocated. Idempotent."""
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on named input arrays; returns named output arrays."""
        if not self.is_active:
            raise RuntimeError(f"{self.name}: infer() called before activate()")
        return self._infer(feed)

    @abc.abstractmethod
    def input_metadata(self) -> list[TensorInfo]:
        """The model's inputs, in order."""

    @abc.abstractmethod
    def output_metadata(self) -> list[TensorInfo]:
        """The model's outputs, in order."""

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _deactivate(self) -> None: ...

    @abc.abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc_info) -> None:
        self.deactivate()
