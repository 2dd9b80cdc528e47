"""The one place that finds vqa-rt's native libraries and registers the TensorRT plugin.

Both libraries come from ``make kernels`` (``build/kernels/lib/``); an environment
variable points at another copy:

- ``libvqa_trt_plugin.so`` (``$VQA_RT_PLUGIN``): the ``VqaDeformConv2d`` IPluginV3, needed
  to build an engine from a graph whose ``DeformConv`` nodes were rewritten to it, and to
  deserialise such an engine.
- ``libvqa_kernels.so`` (``$VQA_KERNELS_LIBRARY``): the kernels' C ABI (ctypes).

Finding a library is a pure function of the environment and the file system, so it
imports nothing heavy; :func:`register_plugin` is the only function here that talks to
TensorRT, and it takes the already imported module.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from vqa_rt.errors import BackendUnavailableError

PLUGIN_ENV = "VQA_RT_PLUGIN"
PLUGIN_LIBRARY = "libvqa_trt_plugin.so"
KERNELS_ENV = "VQA_KERNELS_LIBRARY"
KERNELS_LIBRARY = "libvqa_kernels.so"

# What the plugin registers (kernels/plugin/README.md).
PLUGIN_OP = "VqaDeformConv2d"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = "vqa_rt"

BUILD_HINT = "build it with `make kernels TENSORRT_ROOT=/path/to/TensorRT`"
KERNELS_HINT = "build it with `make kernels`"


@dataclass(frozen=True)
class PluginSpec:
    """A TensorRT plugin an engine needs: registry name, version, namespace."""

    name: str
    version: str
    namespace: str

    def describe(self) -> str:
        return f"{self.name} v{self.version}" + (f" (namespace {self.namespace!r})" if self.namespace else "")


VQA_PLUGIN = PluginSpec(PLUGIN_OP, PLUGIN_VERSION, PLUGIN_NAMESPACE)
# TensorRT's own plugin that its ONNX parser picks for DeformConv (in libnvinfer_plugin).
BUILTIN_DEFORM_PLUGIN = PluginSpec("ModulatedDeformConv2d", "2", "")


def default_search_dirs() -> list[Path]:
    """Build directories searched after the environment variable: the source tree's
    ``build/kernels/lib`` (an editable install or a checkout), then the current directory's."""
    source_tree = Path(__file__).resolve().parents[1] / "build" / "kernels" / "lib"
    here = Path.cwd() / "build" / "kernels" / "lib"
    return [source_tree] if source_tree == here else [source_tree, here]


def _locate(library: str, env_var: str, hint: str, what: str, explicit: str | os.PathLike | None,
            env: Mapping[str, str] | None, search_dirs: Sequence[Path] | None) -> str:
    env = os.environ if env is None else env
    if explicit is not None:
        if not os.path.isfile(explicit):
            raise BackendUnavailableError(f"{what} {explicit}: no such file; {hint}")
        return os.path.abspath(explicit)
    from_env = env.get(env_var)
    if from_env:
        if not os.path.isfile(from_env):
            raise BackendUnavailableError(f"{what} ${env_var}={from_env}: no such file; {hint}, or correct ${env_var}")
        return os.path.abspath(from_env)
    dirs = default_search_dirs() if search_dirs is None else list(search_dirs)
    for directory in dirs:
        candidate = Path(directory) / library
        if candidate.is_file():
            return str(candidate)
    looked = ", ".join(str(Path(d) / library) for d in dirs) or "no build directory"
    raise BackendUnavailableError(
        f"{what} {library} not found (${env_var} is not set; looked in {looked}); {hint}, "
        f"or set ${env_var} to its path"
    )


def find_plugin(explicit: str | os.PathLike | None = None, *, env: Mapping[str, str] | None = None,
                search_dirs: Sequence[Path] | None = None) -> str:
    """Path of ``libvqa_trt_plugin.so``: ``explicit``, else ``$VQA_RT_PLUGIN``, else the build directories.

    Raises :class:`BackendUnavailableError` saying where it looked and how to build it.
    """
    return _locate(PLUGIN_LIBRARY, PLUGIN_ENV, BUILD_HINT, "TensorRT plugin library", explicit, env, search_dirs)


def find_kernels_library(explicit: str | os.PathLike | None = None, *, env: Mapping[str, str] | None = None,
                         search_dirs: Sequence[Path] | None = None) -> str:
    """Path of ``libvqa_kernels.so``: ``explicit``, else ``$VQA_KERNELS_LIBRARY``, else the build directories."""
    return _locate(KERNELS_LIBRARY, KERNELS_ENV, KERNELS_HINT, "kernel library", explicit, env, search_dirs)


_registered: dict[tuple[str, str], object] = {}  # (TensorRT module, plugin library path) -> its library handle
_lock = threading.Lock()


def _creator(trt, spec: PluginSpec):
    try:
        return trt.get_plugin_registry().get_creator(spec.name, spec.version, spec.namespace)
    except (RuntimeError, TypeError):
        return None


def register_plugin(trt, path: str | None = None) -> str:
    """Load ``libvqa_trt_plugin.so`` into the plugin registry of a TensorRT flavour (once per process and flavour)
    and check that it registered ``VqaDeformConv2d``; returns the library's path. ``trt`` is the imported module
    (``tensorrt`` or ``tensorrt_rtx_bindings``)."""
    path = find_plugin(path)
    key = (trt.__name__, path)
    with _lock:
        if key in _registered or _creator(trt, VQA_PLUGIN) is not None:
            _registered.setdefault(key, None)
            return path
        handle = trt.get_plugin_registry().load_library(path)
        if handle is None:
            raise BackendUnavailableError(
                f"TensorRT could not load the plugin library {path} (see TensorRT's message above; was it built "
                f"against this TensorRT's headers?); {BUILD_HINT}"
            )
        if _creator(trt, VQA_PLUGIN) is None:
            raise BackendUnavailableError(f"{path} loaded but registered no {VQA_PLUGIN.describe()}: "
                                          f"not the vqa-rt plugin, or an older build; {BUILD_HINT}")
        _registered[key] = handle
    return path


def register_builtin_plugins(trt, logger) -> None:
    """Register TensorRT's own plugins (``libnvinfer_plugin``: ``ModulatedDeformConv2d`` among them)."""
    if not trt.init_libnvinfer_plugins(logger, ""):
        raise BackendUnavailableError("TensorRT's plugin library (libnvinfer_plugin) could not be initialised")
