"""The two TensorRT flavours that build and run vqa-rt plans, how each is imported, and GPU target names.

- **TensorRT** (module ``tensorrt``, 10.x/11.x; ``pip install 'vqa-rt[gpu]'``): data-centre GPUs
  including Hopper (SM90); it builds a plan for the GPU it runs on.
- **TensorRT for RTX** (module ``tensorrt_rtx_bindings``; ``pip install 'vqa-rt[rtx]'``): Turing to
  Blackwell GPUs of the RTX, A-, L- and T-series; it builds *ahead of time* for named compute
  capabilities, with no GPU needed, and the plan is compiled for the actual GPU when it is loaded.

A target is a compute capability written ``sm86`` (capability 8.6). Importing the RTX flavour also
makes sure its ONNX parser can find ``libtensorrt_rtx.so`` (see :func:`ensure_rtx_library_link`).
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass

from vqa_rt.errors import BackendUnavailableError


@dataclass(frozen=True)
class Flavour:
    """One TensorRT flavour: its key in sidecars and options, its name, module and install command."""

    key: str
    name: str
    module: str
    install: str
    ahead_of_time: bool  # builds for named targets without a GPU

    def describe(self, version: str) -> str:
        return f"{self.name} {version}"


TENSORRT = Flavour("tensorrt", "TensorRT", "tensorrt",
                   "pip install 'vqa-rt[gpu]' on a machine with an NVIDIA GPU and driver", False)
RTX = Flavour("rtx", "TensorRT for RTX", "tensorrt_rtx_bindings", "pip install 'vqa-rt[rtx]'", True)
FLAVOURS = {flavour.key: flavour for flavour in (TENSORRT, RTX)}

RTX_LIBRARY = "libtensorrt_rtx.so"
_TARGET = re.compile(r"^sm(\d+)(\d)$")


def flavour_of(key: str | None) -> Flavour:
    """The flavour a sidecar or option names (plans from before flavours were recorded: full TensorRT)."""
    if key is None:
        return TENSORRT
    if key not in FLAVOURS:
        raise BackendUnavailableError(f"unknown TensorRT flavour {key!r}; vqa-rt knows {', '.join(FLAVOURS)}")
    return FLAVOURS[key]


def ensure_rtx_library_link(libs_dir: str) -> None:
    """Make ``libtensorrt_rtx.so`` exist beside ``libtensorrt_rtx.so.1`` in the RTX wheel's library folder.

    The wheel ships only the ``.so.1``, but its ONNX parser ``dlopen``s the unversioned name (found through
    its ``$ORIGIN`` rpath) when it builds a plugin node, and the process aborts if that fails. A symbolic
    link fixes it for good; where the folder is read-only, :class:`BackendUnavailableError` says the
    command that does.
    """
    link = os.path.join(libs_dir, RTX_LIBRARY)
    target = RTX_LIBRARY + ".1"
    if os.path.exists(link) or not os.path.isfile(os.path.join(libs_dir, target)):
        return
    try:
        if os.path.islink(link):  # dangling
            os.unlink(link)
        os.symlink(target, link)
    except FileExistsError:  # another process made it
        pass
    except OSError as exc:
        raise BackendUnavailableError(
            f"TensorRT for RTX's ONNX parser needs {link} and it cannot be made here ({exc.strerror}); run "
            f"`ln -s {target} {link}` as the owner of that folder") from None


def import_flavour(flavour: Flavour = TENSORRT):
    """The flavour's Python module, or :class:`BackendUnavailableError` saying why and what to install."""
    try:
        if flavour is RTX:
            libs = importlib.import_module("tensorrt_rtx_libs")
            ensure_rtx_library_link(os.path.dirname(libs.__file__))
        return importlib.import_module(flavour.module)
    except ImportError as exc:  # absent, or bindings present without their libraries
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackendUnavailableError(f"{flavour.name} is not available (import {flavour.module}: {detail}); "
                                      f"install it with {flavour.install}") from None


def target_name(compute_capability: str) -> str:
    """``"8.6"`` -> ``"sm86"``."""
    major, minor = compute_capability.split(".")
    return f"sm{major}{minor}"


def target_capability(target: str) -> str:
    """``"sm86"`` -> ``"8.6"``; ``"sm120"`` -> ``"12.0"``."""
    match = _TARGET.match(target)
    if match is None:
        raise ValueError(target)
    return f"{int(match.group(1))}.{match.group(2)}"


def is_target_name(text: str) -> bool:
    return _TARGET.match(text) is not None


def buildable_targets(trt) -> list[str]:
    """The targets an RTX module builds ahead of time (its ``ComputeCapability`` enum), e.g. ``sm80``."""
    members = getattr(trt, "ComputeCapability", None)
    if members is None:
        return []
    return [name.lower() for name in members.__members__ if is_target_name(name.lower())]
