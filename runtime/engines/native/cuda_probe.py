"""What CUDA this process can see, asked of the driver itself (``libcuda`` through ctypes).

No CUDA Python package is needed: ``vqa-rt doctor``, the engine build (which records
the GPU a plan was built for) and the TensorRT runner (which checks it) all use this.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

_CC_MAJOR, _CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_{MAJOR,MINOR}
CUDART_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str  # "9.0"
    memory_mib: int


@dataclass(frozen=True)
class DriverInfo:
    """The CUDA driver's answer: its version and devices, or why there are none (``error``)."""

    driver_version: str | None = None  # "13.0"
    gpus: list[GpuInfo] = field(default_factory=list)
    error: str | None = None


def _version(number: int) -> str:
    return f"{number // 1000}.{number % 1000 // 10}"


def _error_name(lib, status: int) -> str:
    name = ctypes.c_char_p()
    if lib.cuGetErrorName(status, ctypes.byref(name)) == 0 and name.value:
        return f"{name.value.decode()} ({status})"
    return f"CUresult {status}"


def probe_driver() -> DriverInfo:
    """Driver version and visible GPUs from ``libcuda.so.1``; never raises."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return DriverInfo(error=f"no CUDA driver (libcuda.so.1 cannot be loaded: {exc})")
    number = ctypes.c_int(0)
    version = _version(number.value) if lib.cuDriverGetVersion(ctypes.byref(number)) == 0 else None
    status = lib.cuInit(0)
    if status != 0:
        return DriverInfo(version, error=f"cuInit failed: {_error_name(lib, status)}")
    count = ctypes.c_int(0)
    status = lib.cuDeviceGetCount(ctypes.byref(count))
    if status != 0:
        return DriverInfo(version, error=f"cuDeviceGetCount failed: {_error_name(lib, status)}")
    gpus = []
    for index in range(count.value):
        device, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        memory = ctypes.c_size_t(0)
        if lib.cuDeviceGet(ctypes.byref(device), index) != 0:
            continue
        lib.cuDeviceGetName(name, len(name), device)
        lib.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, device)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, device)
        lib.cuDeviceTotalMem_v2(ctypes.byref(memory), device)
        gpus.append(GpuInfo(index, name.value.decode(errors="replace"), f"{major.value}.{minor.value}",
                            memory.value >> 20))
    return DriverInfo(version, gpus, None if gpus else "the driver reports no CUDA device")


def probe_runtime() -> tuple[str | None, str]:
    """(CUDA runtime version, which library answered) from a shared ``libcudart``; (None, why) if none loads."""
    errors = []
    for name in CUDART_NAMES:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            errors.append(name)
            continue
        number = ctypes.c_int(0)
        if lib.cudaRuntimeGetVersion(ctypes.byref(number)) == 0:
            return _version(number.value), name
    return None, f"no shared CUDA runtime library loadable (tried {', '.join(errors)})"
