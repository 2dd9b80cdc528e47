"""TensorRT runner: a serialised plan from ``vqa-rt build-engine`` on the GPU, behind the
same interface as :class:`~vqa_rt.runtime.engines.backends.onnxrt.OnnxRuntimeRunner`.

TensorRT and pycuda are imported when a runner is made, never at module import;
where either is missing the runner raises :class:`BackendUnavailableError`. The
plugin library is loaded (through :mod:`vqa_rt.runtime.engines.native.libraries`) before the plan is
deserialised, and the plan's sidecar is checked against the TensorRT version and
GPU at hand, so a plan from elsewhere fails with a message saying why.

Inputs come either from host arrays (:meth:`TensorRTRunner.infer`) or are written on the device by
the caller (:meth:`TensorRTRunner.infer_device`: GPU pre-processing straight into the engine's input
buffers, see :mod:`vqa_rt.runtime.engines.native.gpu_preprocess`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from vqa_rt.errors import BackendUnavailableError, InputError, ModelError
from vqa_rt.runtime.engines.backends.base import Runner, TensorInfo
from vqa_rt.runtime.engines.backends.trt_flavours import RTX, Flavour, flavour_of, import_flavour, target_name
from vqa_rt.runtime.engines.metadata import plan_sidecar_path, read_plan_sidecar
from vqa_rt.runtime.engines.native.cuda_probe import probe_driver
from vqa_rt.runtime.engines.native.libraries import (
    PLUGIN_NAMESPACE,
    find_plugin,
    register_builtin_plugins,
    register_plugin,
)
from vqa_rt.runtime.outputs import open_atomic

PYCUDA_HINT = "install it with pip install pycuda on the machine with the NVIDIA GPU"


def import_pycuda():
    """``pycuda.driver``, or :class:`BackendUnavailableError`."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendUnavailableError(f"pycuda is not available ({exc}); the TensorRT runner uses it for device "
                                      f"memory and streams; {PYCUDA_HINT}") from None
    return cuda


def release(version: str) -> tuple[int, ...]:
    """The numeric major.minor.patch of a TensorRT version string ("10.13.3.9.post1" -> (10, 13, 3))."""
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def make_logger(trt, verbose: bool = False, echo: bool = True):
    """A ``trt.ILogger`` that prints warnings and errors (with ``echo``; and info with ``verbose``) to stderr as
    ``[TensorRT] ...``, keeps the error messages in ``.errors`` for the exceptions it explains and the warnings
    in ``.warnings``, and keeps the builder's detailed layer log (the message starting ``Layers:``) in
    ``.layer_log``."""
    severity = trt.ILogger.Severity
    threshold = int(severity.INFO if verbose else severity.WARNING) if verbose or echo else -1
    labels = {int(severity.INTERNAL_ERROR): "internal error", int(severity.ERROR): "error",
              int(severity.WARNING): "warning", int(severity.INFO): "info", int(severity.VERBOSE): "verbose"}

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []
            self.layer_log: str | None = None

        def log(self, level, message):
            level = int(level)
            if level <= int(severity.ERROR):
                self.errors.append(message)
            elif level == int(severity.WARNING) and message not in self.warnings:
                self.warnings.append(message)
            if message.startswith("Layers:"):
                self.layer_log = message
            if level <= threshold:
                print(f"[TensorRT] {labels.get(level, level)}: {message}", file=sys.stderr)

        def last_error(self) -> str:
            return self.errors[-1] if self.errors else "no message from TensorRT"

    return _Logger()


def start_tensorrt(trt, logger, kind: str = "Runtime"):
    """``trt.Runtime(logger)`` (or ``trt.Builder`` for ``kind="Builder"``), or :class:`BackendUnavailableError`
    with TensorRT's first message when it could not start (CUDA initialisation failed: no usable GPU, or a
    driver older than TensorRT's CUDA). ``logger`` is :func:`make_logger`'s. TensorRT (10.16 and 11.1 seen)
    returns a runtime object even then, and using or destroying it crashes the process, also at
    interpreter exit: a failed one is never used, and one extra reference keeps it from being destroyed."""
    seen = len(logger.errors)
    started = getattr(trt, kind)(logger)
    if started is not None and len(logger.errors) == seen:
        return started
    if started is not None:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(started))
    message = logger.errors[seen] if len(logger.errors) > seen else "no message from TensorRT"
    raise BackendUnavailableError(f"TensorRT {trt.__version__} could not start its {kind.lower()} ({message}); "
                                  "see `vqa-rt doctor` for the GPU, driver and CUDA versions")


def plan_flavour(sidecar: dict[str, Any] | None) -> Flavour:
    """The TensorRT flavour that built a plan, as its sidecar records it."""
    return flavour_of(((sidecar or {}).get("tensorrt") or {}).get("flavour"))


def plan_mismatches(sidecar: dict[str, Any], trt_version: str, gpu_name: str | None = None,
                    compute_capability: str | None = None) -> tuple[list[str], list[str]]:
    """(errors, warnings) comparing where a plan was built (its sidecar) with the TensorRT and GPU here.

    A plan runs only on the release of the flavour that built it. A full TensorRT plan runs on GPUs of
    the compute capability it was built on (another model of the same capability works but was not
    tuned for); a TensorRT for RTX plan runs on GPUs of the targets it was built for.
    """
    errors, warnings = [], []
    flavour = plan_flavour(sidecar)
    built = (sidecar.get("tensorrt") or {}).get("version")
    if built and release(built) != release(trt_version):
        errors.append(f"it was built with {flavour.describe(built)} and this is {flavour.describe(trt_version)}")
    if not compute_capability:
        return errors, warnings
    here = f"this GPU is {gpu_name} ({target_name(compute_capability)})"
    targets = sidecar.get("targets")
    built_gpu = sidecar.get("gpu") or {}
    built_cc, built_name = built_gpu.get("compute_capability"), built_gpu.get("name")
    if targets and target_name(compute_capability) not in targets:
        errors.append(f"it was built for {', '.join(targets)} and {here}")
    elif not targets and built_cc and built_cc != compute_capability:
        errors.append(f"it was built for {built_name} ({target_name(built_cc)}) and {here}")
    elif gpu_name and built_name and built_name != gpu_name and not sidecar.get("built_without_gpu"):
        warnings.append(f"it was built on {built_name} and runs on {gpu_name} (same compute capability; "
                        "rebuild it here for the best speed)")
    return errors, warnings


def runtime_cache_path(plan: str) -> str:
    """Where a TensorRT for RTX plan's runtime cache is kept: ``fr.plan`` -> ``fr.plan.runtime-cache``."""
    return f"{plan}.runtime-cache"


def _invalidity(trt, runtime, data: bytes) -> str:
    """Why the runtime cannot run ``data`` on this GPU, from TensorRT for RTX's own check (empty where it finds
    none, and for full TensorRT, which has no such check)."""
    check = getattr(runtime, "get_engine_validity", None)
    if check is None:
        return ""
    validity, diagnostics = check(data)
    if validity != trt.EngineValidity.INVALID:
        return ""
    reasons = [name.lower().replace("_", " ") for name, flag in trt.EngineInvalidityDiagnostics.__members__.items()
               if int(diagnostics) & int(flag)]
    return ", ".join(reasons) or "invalid plan"


def _rebuild_hint(path: str) -> str:
    return f"rebuild it here with 'vqa-rt build-engine MODEL.onnx --output {path}'"


@dataclass
class _Buffer:
    """One tensor's device memory and its pinned host staging buffer (made when first needed); both only grow."""

    device: Any
    host: np.ndarray | None  # uint8, page-locked; None for an input only ever written on the device
    capacity: int

    def host_view(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        return self.host[: count * dtype.itemsize].view(dtype).reshape(shape)


class TensorRTRunner(Runner):
    """Runs a TensorRT plan on GPU 0 (as ``CUDA_VISIBLE_DEVICES`` orders them), one CUDA stream per runner.

    ``sidecar`` is the plan's sidecar as the engine record read it (None: read from ``PLAN.json`` if
    present; a plan without one still runs, unchecked). ``plugin`` names ``libvqa_trt_plugin.so``
    (default: :func:`vqa_rt.runtime.engines.native.libraries.find_plugin`).
    Input shapes are set on every call, so batch and frame size may change between calls within
    the plan's optimisation profile.
    :meth:`infer` and :meth:`infer_device` hold a lock: one call at a time uses the buffers and stream.
    """

    def __init__(self, path: str, sidecar: dict[str, Any] | None = None, plugin: str | None = None,
                 verbose: bool = False):
        super().__init__()
        if not os.path.isfile(path):
            raise ModelError(f"{path}: no such engine file")
        self.path = path
        if sidecar is None and os.path.isfile(plan_sidecar_path(path)):
            sidecar = read_plan_sidecar(path)
        self.sidecar = sidecar
        self.flavour = plan_flavour(sidecar)
        try:
            self.trt = import_flavour(self.flavour)
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(f"{path}: {self.built_with()}: {exc}") from None
        self.trt_version = self.trt.__version__
        self._check_platform()
        self.cuda = import_pycuda()
        plugins = (self.sidecar or {}).get("plugins")
        needs_ours = any(p.get("namespace") == PLUGIN_NAMESPACE for p in plugins or [])
        # Without a sidecar we cannot know: load the plugin if it can be found.
        self.plugin_path: str | None = None
        if needs_ours or plugin is not None:
            self.plugin_path = find_plugin(plugin)
        elif plugins is None:
            try:
                self.plugin_path = find_plugin()
            except BackendUnavailableError:
                pass
        self.needs_builtin_plugins = any(not p.get("namespace") for p in plugins or [])
        precision = (self.sidecar or {}).get("precision")
        prefix = "tensorrt" if self.flavour.key == "tensorrt" else f"tensorrt-{self.flavour.key}"
        self.name = f"{prefix}-{precision}" if precision else prefix
        self.logger = make_logger(self.trt, verbose)
        self._ctx = self._runtime = self._engine = self._context = self._stream = self._runtime_cache = None
        self._inputs: list[TensorInfo] = []
        self._outputs: list[TensorInfo] = []
        self._buffers: dict[str, _Buffer] = {}
        self._lock = threading.Lock()

    def _check_platform(self) -> None:
        """Refuse, naming both sides, a plan built by another release of its flavour or for other GPUs, and a
        machine without a usable GPU (the CUDA driver is asked, so this needs neither pycuda nor a context)."""
        driver = probe_driver()
        gpu = driver.gpus[0] if driver.gpus else None
        if self.sidecar is not None:
            errors, _ = plan_mismatches(self.sidecar, self.trt_version, gpu and gpu.name,
                                        gpu and gpu.compute_capability)
            if errors:
                raise ModelError(f"{self.path}: this plan cannot run here: {'; '.join(errors)}; "
                                 f"{_rebuild_hint(self.path)}")
        if gpu is None:
            raise BackendUnavailableError(f"{self.path}: {self.built_with()} and this machine has no usable CUDA "
                                          f"GPU ({driver.error})")

    def built_with(self) -> str:
        """Where the plan came from, as its sidecar says: ``built with TensorRT for RTX 1.7.1 for sm86, sm89``."""
        sidecar = self.sidecar or {}
        version = (sidecar.get("tensorrt") or {}).get("version", "an unknown version")
        targets = sidecar.get("targets") or []
        return f"the plan was built with {self.flavour.describe(version)}" + (
            f" for {', '.join(targets)}" if targets else "")

    @property
    def stream(self):
        """The runner's ``pycuda.driver.Stream`` (None until activated): inference runs on it."""
        return self._stream

    @contextlib.contextmanager
    def device_context(self) -> Iterator[None]:
        """Make the runner's CUDA context (device 0's primary context) current in this thread for the block."""
        if self._ctx is None:
            raise RuntimeError(f"{self.name}: no CUDA context before activate()")
        self._ctx.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    # ------------------------------------------------------------------ activation

    def _activate(self) -> None:
        cuda = self.cuda
        try:
            cuda.init()
            if cuda.Device.count() == 0:
                raise BackendUnavailableError(f"{self.path}: {self.built_with()} and this machine has no CUDA GPU "
                                              "(the driver reports none)")
            device = cuda.Device(0)
            self._ctx = device.retain_primary_context()
        except cuda.Error as exc:
            raise BackendUnavailableError(f"{self.path}: {self.built_with()} and this machine has no usable "
                                          f"CUDA GPU ({exc})") from None
        self._ctx.push()
        try:
            self._load(device)
        except BaseException:
            cuda.Context.pop()
            self._release()
            raise
        cuda.Context.pop()

    def _load(self, device) -> None:
        trt, path = self.trt, self.path
        gpu_name = device.name()
        capability = "{}.{}".format(*device.compute_capability())
        if self.sidecar is not None:  # the errors were checked when the runner was made (_check_platform)
            for warning in plan_mismatches(self.sidecar, self.trt_version, gpu_name, capability)[1]:
                print(f"vqa-rt: warning: {path}: {warning}", file=sys.stderr)
        if self.needs_builtin_plugins:
            register_builtin_plugins(trt, self.logger)
        if self.plugin_path is not None:
            register_plugin(trt, self.plugin_path)
        self._runtime = start_tensorrt(trt, self.logger)
        with open(path, "rb") as handle:
            data = handle.read()
        invalid = _invalidity(trt, self._runtime, data)
        if invalid:
            raise ModelError(f"{path}: {self.flavour.name} {self.trt_version} says this plan cannot run on {gpu_name} "
                             f"({target_name(capability)}): {invalid}; {self.built_with()}; {_rebuild_hint(path)}")
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            plugin = f"plugin {self.plugin_path}" if self.plugin_path else "no vqa-rt plugin (none found)"
            raise ModelError(
                f"{path}: {self.flavour.describe(self.trt_version)} cannot deserialise this plan "
                f"({self.logger.last_error()}); {self.built_with()}, this is {gpu_name} with {plugin} loaded; "
                f"{_rebuild_hint(path)}")
        self._context = self._create_context()
        if self._context is None:
            raise ModelError(f"{path}: TensorRT could not create an execution context ({self.logger.last_error()})")
        self._stream = self.cuda.Stream()
        axes = ((self.sidecar or {}).get("metadata") or {}).get("dynamic_axes") or {}
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            try:
                dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            except TypeError:
                raise ModelError(f"{path}: tensor {name!r} has type {self._engine.get_tensor_dtype(name)}, "
                                 "which has no NumPy equivalent") from None
            names = axes.get(name, {})
            shape = tuple(d if d >= 0 else names.get(str(i)) for i, d in enumerate(self._engine.get_tensor_shape(name)))
            info = TensorInfo(name, dtype, shape)
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs).append(info)

    def _create_context(self):
        """An execution context; for TensorRT for RTX with its runtime cache (the kernels it compiles for this GPU
        when the plan is loaded), read from :func:`runtime_cache_path` where an earlier run left one."""
        if self.flavour is not RTX:
            return self._engine.create_execution_context()
        config = self._engine.create_runtime_config()
        self._runtime_cache = config.create_runtime_cache()
        cache_file = runtime_cache_path(self.path)
        if os.path.isfile(cache_file):
            with open(cache_file, "rb") as handle:
                if not self._runtime_cache.deserialize(handle.read()):
                    print(f"vqa-rt: warning: {cache_file}: runtime cache not usable here; compiling afresh",
                          file=sys.stderr)
        config.set_runtime_cache(self._runtime_cache)
        return self._engine.create_execution_context(config)

    def _save_runtime_cache(self) -> None:
        if self._runtime_cache is None:
            return
        cache_file = runtime_cache_path(self.path)
        try:
            with open_atomic(cache_file, "wb") as handle:
                handle.write(memoryview(self._runtime_cache.serialize()))
        except OSError as exc:  # a read-only plan folder: the next load compiles again
            print(f"vqa-rt: warning: cannot write the runtime cache {cache_file} ({exc.strerror})", file=sys.stderr)

    def _deactivate(self) -> None:
        self._ctx.push()
        try:
            if self._stream is not None:
                self._stream.synchronize()
            self._save_runtime_cache()
        finally:
            self.cuda.Context.pop()
        self._release()

    def _release(self) -> None:
        """Free buffers, context, engine and runtime (in that order) and let the primary context go."""
        if self._ctx is None:
            return
        self._ctx.push()
        try:
            for buffer in self._buffers.values():
                buffer.device.free()
            self._buffers.clear()
            self._context = self._runtime_cache = self._engine = self._runtime = self._stream = None
        finally:
            self.cuda.Context.pop()
            self._ctx.detach()
            self._ctx = None
        self._inputs, self._outputs = [], []

    # ------------------------------------------------------------------ inference

    def _buffer(self, name: str, nbytes: int, host: bool = True) -> _Buffer:
        buffer = self._buffers.get(name)
        if buffer is None or buffer.capacity < nbytes:
            if buffer is not None:
                buffer.device.free()
            capacity = max(nbytes, 256)
            buffer = _Buffer(self.cuda.mem_alloc(capacity), None, capacity)
            self._buffers[name] = buffer
        if host and buffer.host is None:
            buffer.host = self.cuda.pagelocked_empty(buffer.capacity, np.uint8)
        return buffer

    def _profile_text(self, name: str) -> str:
        low, _, high = self._engine.get_tensor_profile_shape(name, 0)
        return f"min {tuple(low)}, max {tuple(high)}"

    def _bind_input(self, info: TensorInfo, shape: tuple[int, ...], host: bool = True) -> _Buffer:
        """Set an input's shape and point TensorRT at its device buffer (grown to fit)."""
        if not self._context.set_input_shape(info.name, shape):
            raise InputError(f"{self.path}: input {info.name!r} of shape {shape} is outside the plan's "
                             f"profile ({self._profile_text(info.name)}); rebuild it with other "
                             "--min-size/--max-size/--max-batch")
        buffer = self._buffer(info.name, int(np.prod(shape, dtype=np.int64)) * info.dtype.itemsize, host)
        self._context.set_tensor_address(info.name, int(buffer.device))
        return buffer

    def _execute(self) -> dict[str, np.ndarray]:
        """Bind the outputs, run the plan on the stream and copy the outputs back (inputs are bound)."""
        cuda, context, stream = self.cuda, self._context, self._stream
        results = {}
        for info in self._outputs:
            shape = tuple(context.get_tensor_shape(info.name))
            if any(d < 0 for d in shape):
                raise ModelError(f"{self.path}: TensorRT cannot infer the shape of output {info.name!r} "
                                 f"({self.logger.last_error()})")
            nbytes = int(np.prod(shape, dtype=np.int64)) * info.dtype.itemsize
            buffer = self._buffer(info.name, nbytes)
            context.set_tensor_address(info.name, int(buffer.device))
            results[info.name] = (buffer, shape, info.dtype)
        if not context.execute_async_v3(stream.handle):
            raise ModelError(f"{self.path}: TensorRT failed to run the plan ({self.logger.last_error()})")
        views = {}
        for name, (buffer, shape, dtype) in results.items():
            views[name] = buffer.host_view(shape, dtype)
            cuda.memcpy_dtoh_async(views[name], buffer.device, stream)
        stream.synchronize()
        return {name: view.copy() for name, view in views.items()}

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [info.name for info in self._inputs if info.name not in feed]
        if missing:
            raise InputError(f"{self.path}: missing input(s) {', '.join(missing)}")
        with self._lock, self.device_context():
            for info in self._inputs:
                array = np.ascontiguousarray(feed[info.name], dtype=info.dtype)
                buffer = self._bind_input(info, array.shape)
                host = buffer.host_view(array.shape, info.dtype)
                np.copyto(host, array)
                self.cuda.memcpy_htod_async(buffer.device, host, self._stream)
            return self._execute()

    def infer_device(self, shapes: Mapping[str, Sequence[int]],
                     fill: Callable[[dict[str, int]], None]) -> dict[str, np.ndarray]:
        """Run the plan on inputs the caller writes on the device; returns the outputs as :meth:`infer` does.

        Every input's shape is set from ``shapes`` and its device buffer sized for it; then
        ``fill({input name: device address})`` is called once, with the runner's CUDA context current
        and its lock held, to enqueue on :attr:`stream` whatever writes each input (C-contiguous, of its
        shape and of the dtype :meth:`input_metadata` gives). The plan runs after that work on the same
        stream. The addresses are valid only during ``fill``: the next call may move them.
        """
        if not self.is_active:
            raise RuntimeError(f"{self.name}: infer_device() called before activate()")
        missing = [info.name for info in self._inputs if info.name not in shapes]
        if missing:
            raise InputError(f"{self.path}: missing input shape(s) {', '.join(missing)}")
        with self._lock, self.device_context():
            addresses = {info.name: int(self._bind_input(info, tuple(int(d) for d in shapes[info.name]),
                                                         host=False).device)
                         for info in self._inputs}
            fill(addresses)
            return self._execute()

    def input_metadata(self) -> list[TensorInfo]:
        return list(self._inputs)

    def output_metadata(self) -> list[TensorInfo]:
        return list(self._outputs)
