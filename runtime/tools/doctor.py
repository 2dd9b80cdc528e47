"""``vqa-rt doctor``: what this machine offers vqa-rt's GPU path, each answer saying how it was probed.

Every probe is a function returning a :class:`Finding`; none raises, and none takes an
import or a file's presence for proof that a device works where a device can be asked.
"""

from __future__ import annotations

import ctypes
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Callable

import vqa_rt
from vqa_rt.errors import VqaRtError
from vqa_rt.runtime.engines.backends.trt_flavours import FLAVOURS, Flavour, buildable_targets, import_flavour
from vqa_rt.runtime.engines.native.cuda_probe import probe_driver, probe_runtime
from vqa_rt.runtime.engines.native.libraries import VQA_PLUGIN, find_kernels_library, find_plugin, register_plugin

OK, MISSING, INFO = "ok", "missing", "info"


@dataclass(frozen=True)
class Finding:
    """One line of the report: ``status`` is ok, missing or info; ``probe`` says how ``value`` was learnt."""

    name: str
    status: str
    value: str
    probe: str


def _vqa_rt() -> Finding:
    return Finding("vqa-rt", INFO, f"{vqa_rt.__version__} on Python {platform.python_version()} "
                   f"({platform.system()} {platform.machine()})", "package metadata")


def _gpu_driver() -> list[Finding]:
    probe = "CUDA driver API (libcuda.so.1 via ctypes: cuInit, cuDeviceGetCount)"
    info = probe_driver()
    findings = []
    if info.gpus:
        names = "; ".join(f"{g.index}: {g.name} (compute capability {g.compute_capability}, {g.memory_mib} MiB)"
                          for g in info.gpus)
        findings.append(Finding("GPU", OK, names, probe))
    else:
        findings.append(Finding("GPU", MISSING, f"none ({info.error})", probe))
    findings.append(Finding("CUDA driver", OK if info.driver_version else MISSING,
                            info.driver_version or "not installed", "cuDriverGetVersion (libcuda.so.1)"))
    return findings


def _nvidia_smi() -> Finding:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return Finding("nvidia-smi", MISSING, "not on PATH", "PATH lookup")
    try:
        result = subprocess.run([tool, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding("nvidia-smi", MISSING, f"did not answer ({exc})", tool)
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode or not lines:
        why = (result.stderr or result.stdout).strip().splitlines()
        return Finding("nvidia-smi", MISSING, f"exit {result.returncode}: {why[0] if why else 'no output'}", tool)
    return Finding("nvidia-smi", OK, "; ".join(lines), f"{tool} --query-gpu")


def _cuda_runtime() -> Finding:
    version, source = probe_runtime()
    if version is None:
        return Finding("CUDA runtime", MISSING, "no shared libcudart", source)
    return Finding("CUDA runtime", OK, version, f"cudaRuntimeGetVersion ({source} via ctypes)")


def _flavour(flavour: Flavour) -> tuple[Finding, object | None]:
    """Whether a TensorRT flavour imports, its version and the targets it builds."""
    try:
        trt = import_flavour(flavour)
    except Exception as exc:  # BackendUnavailableError, or a binding that fails while loading its libraries
        return Finding(flavour.name, MISSING, str(exc).splitlines()[0], f"import {flavour.module}"), None
    if flavour.ahead_of_time:
        builds = f"builds ahead of time, no GPU needed, for {', '.join(buildable_targets(trt))}"
    else:
        builds = "builds for the GPU it runs on"
    return Finding(flavour.name, OK, f"{trt.__version__}; {builds}", f"import {flavour.module}"), trt


def _pycuda() -> Finding:
    try:
        import pycuda
    except ImportError:
        return Finding("pycuda", MISSING, "not installed (the TensorRT runner needs it)", "import pycuda")
    return Finding("pycuda", OK, getattr(pycuda, "VERSION_TEXT", "installed"), "import pycuda")


def _plugin(modules: dict[Flavour, object]) -> list[Finding]:
    """Where the plugin is, and whether it registers ``VqaDeformConv2d`` in each flavour found."""
    name = "TensorRT plugin"
    try:
        path = find_plugin()
    except VqaRtError as exc:
        return [Finding(name, MISSING, f"{exc} (FR plans then use --deform decomposed)",
                        "$VQA_RT_PLUGIN, then build/kernels/lib")]
    findings = []
    for flavour, trt in modules.items():
        try:
            register_plugin(trt, path)
        except VqaRtError as exc:
            findings.append(Finding(name, MISSING, f"{path} found but not loaded into {flavour.name}: {exc}",
                                    "get_plugin_registry().load_library"))
            continue
        findings.append(Finding(name, OK, f"{path}: loaded into {flavour.name}, {VQA_PLUGIN.describe()} registered",
                                "get_plugin_registry().load_library + get_creator"))
    if findings:
        return findings
    try:
        library = ctypes.CDLL(path)
        exported = hasattr(library, "getCreators")
    except OSError as exc:
        return [Finding(name, MISSING, f"{path} found but cannot be loaded ({exc})", "dlopen via ctypes")]
    state = "exports getCreators" if exported else "does NOT export getCreators"
    return [Finding(name, OK if exported else MISSING,
                    f"{path}: found, {state}; not registered (no TensorRT flavour available)", "dlopen via ctypes")]


def _kernels() -> Finding:
    from vqa_rt.runtime.engines.native.kernel_library import KernelLibrary

    try:
        path = find_kernels_library()
    except VqaRtError as exc:
        return Finding("kernel library", MISSING, str(exc), "$VQA_KERNELS_LIBRARY, then build/kernels/lib")
    try:
        library = KernelLibrary(path)
    except VqaRtError as exc:
        return Finding("kernel library", MISSING, str(exc), "dlopen via ctypes")
    try:
        devices = f"{library.device_count()} device(s)"
    except VqaRtError as exc:
        devices = f"{library.status_name(exc.status)}: {library.last_error() or 'no message'}"
    return Finding("kernel library", OK, f"{path}: {library.build_info()}; vqa_device_count: "
                   f"{devices}", "dlopen via ctypes + vqa_device_count (C ABI)")


def _onnxruntime() -> Finding:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return Finding("ONNX Runtime", MISSING, f"not installed ({exc})", "import onnxruntime")
    return Finding("ONNX Runtime", OK, f"{ort.__version__}; providers: {', '.join(ort.get_available_providers())}",
                   "onnxruntime.get_available_providers() (built into the wheel; not a device probe)")


def _guard(name: str, probe: Callable[[], Finding | list[Finding]]) -> list[Finding]:
    try:
        found = probe()
    except Exception as exc:  # a probe must not stop the report
        return [Finding(name, MISSING, f"probe failed: {type(exc).__name__}: {exc}", "")]
    return found if isinstance(found, list) else [found]


def diagnose() -> list[Finding]:
    """Every probe, in report order."""
    findings = _guard("vqa-rt", _vqa_rt) + _guard("GPU", _gpu_driver) + _guard("nvidia-smi", _nvidia_smi)
    findings += _guard("CUDA runtime", _cuda_runtime)
    modules = {}
    for flavour in FLAVOURS.values():
        finding, trt = _flavour(flavour)
        findings.append(finding)
        if trt is not None:
            modules[flavour] = trt
    findings += _guard("pycuda", _pycuda)
    findings += _guard("TensorRT plugin", lambda: _plugin(modules)) + _guard("kernel library", _kernels)
    findings += _guard("ONNX Runtime", _onnxruntime)
    return findings


def format_findings(findings: list[Finding]) -> list[str]:
    """Aligned lines: ``name  [status]  value  (probed: how)``."""
    width = max(len(f.name) for f in findings)
    return [f"{f.name:<{width}}  [{f.status}]  {f.value}" + (f"  (probed: {f.probe})" if f.probe else "")
            for f in findings]


def as_dicts(findings: list[Finding]) -> list[dict[str, str]]:
    return [asdict(f) for f in findings]
