"""Which TensorRT flavour builds a plan and for which GPUs: ``--flavour`` and ``--target`` resolved against what is
installed and what GPU is visible, with one clear error for every request that cannot be built."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

from vqa_rt.errors import BackendUnavailableError, EngineBuildError
from vqa_rt.runtime.engines.backends.trt_flavours import (
    FLAVOURS,
    RTX,
    TENSORRT,
    Flavour,
    buildable_targets,
    import_flavour,
    is_target_name,
    target_capability,
    target_name,
)
from vqa_rt.runtime.engines.native.cuda_probe import DriverInfo, GpuInfo, probe_driver

NATIVE = "native"
FLAVOUR_CHOICES = ("auto", *FLAVOURS)
EXAMPLE_TARGETS = "sm80,sm86,sm89,sm120"
FP8_MIN_CAPABILITY = (8, 9)  # Ada and newer


@dataclass(frozen=True)
class BuildPlatform:
    """The flavour (its imported module), the targets, and the GPU a native build runs on (None ahead of time)."""

    flavour: Flavour
    trt: object
    targets: tuple[str, ...]
    gpu: GpuInfo | None = None
    driver: str | None = None

    @property
    def native(self) -> bool:
        return self.gpu is not None


def parse_targets(text: str | None) -> tuple[str, ...] | None:
    """``"sm80, sm89"`` -> ``("sm80", "sm89")``; ``"native"`` -> ``("native",)``; None stays None (the default)."""
    if text is None:
        return None
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    if not names:
        raise EngineBuildError(f"--target {text!r} names no target; give e.g. {EXAMPLE_TARGETS} or {NATIVE}")
    if NATIVE in names and len(names) > 1:
        raise EngineBuildError(f"--target {NATIVE} (the GPU at hand) cannot be combined with other targets")
    unknown = [name for name in names if name != NATIVE and not is_target_name(name)]
    if unknown:
        raise EngineBuildError(f"unknown target {unknown[0]!r}: name compute capabilities as smXY (e.g. "
                               f"{EXAMPLE_TARGETS}) or {NATIVE}")
    return names


def _capability(target: str) -> tuple[int, ...]:
    return tuple(int(part) for part in target_capability(target).split("."))


def _no_gpu(driver: DriverInfo, asked: str) -> EngineBuildError:
    return EngineBuildError(f"{asked} needs a visible NVIDIA GPU and there is none ({driver.error}); build ahead of "
                            f"time instead by naming the targets, e.g. --target {EXAMPLE_TARGETS} "
                            "(TensorRT for RTX)")


def _check_rtx_targets(trt, targets: tuple[str, ...]) -> None:
    buildable = buildable_targets(trt)
    for target in targets:
        if target in buildable:
            continue
        if target == "sm90":
            raise EngineBuildError("TensorRT for RTX cannot build sm90 (Hopper: H100, H200, GH200); build Hopper plans "
                                   "with full TensorRT on such a GPU (--flavour tensorrt --target native)")
        raise EngineBuildError(f"TensorRT for RTX {trt.__version__} cannot build {target}; it builds "
                               f"{', '.join(buildable)}")


def choose_platform(flavour_key: str = "auto", targets_text: str | None = None, precision: str = "fp32",
                    probe: Callable[[], DriverInfo] = probe_driver) -> BuildPlatform:
    """Resolve ``--flavour`` and ``--target`` (see the README's "Building engines").

    Named targets are built ahead of time by TensorRT for RTX, without a GPU. ``native`` (the default where a
    GPU is visible) builds for the GPU at hand: with full TensorRT where it is installed (``auto``), else
    TensorRT for RTX. Raises :class:`EngineBuildError` for a request no flavour here can build and
    :class:`BackendUnavailableError` where the flavour asked for is not installed.
    """
    if flavour_key not in FLAVOUR_CHOICES:
        raise EngineBuildError(f"unknown --flavour {flavour_key!r}; choose from {', '.join(FLAVOUR_CHOICES)}")
    targets = parse_targets(targets_text)
    ahead_of_time = targets is not None and targets != (NATIVE,)
    if flavour_key == TENSORRT.key and ahead_of_time:
        raise EngineBuildError(f"full TensorRT builds only for the GPU it runs on (--target {NATIVE}); building for "
                               f"{', '.join(targets)} ahead of time needs --flavour rtx (TensorRT for RTX)")
    if ahead_of_time:
        flavour, gpu, driver = RTX, None, None
    else:
        driver = probe()
        if not driver.gpus:
            raise _no_gpu(driver, f"--target {NATIVE}" if targets else "building without --target")
        gpu = driver.gpus[0]  # the device TensorRT builds on (CUDA_VISIBLE_DEVICES picks it)
        if flavour_key == "auto":
            flavour = TENSORRT if importlib.util.find_spec(TENSORRT.module) is not None else RTX
        else:
            flavour = FLAVOURS[flavour_key]
        targets = (target_name(gpu.compute_capability),)
    if precision == "fp8":
        old = [target for target in targets if _capability(target) < FP8_MIN_CAPABILITY]
        if old:
            raise EngineBuildError(f"FP8 needs compute capability 8.9 or newer (Ada, Hopper, Blackwell); "
                                   f"{', '.join(old)} is older")
    try:
        trt = import_flavour(flavour)
    except BackendUnavailableError:
        if flavour_key != "auto" or flavour is RTX:
            raise
        flavour, trt = RTX, import_flavour(RTX)  # `tensorrt` found but unusable: the RTX flavour builds natively too
    if flavour is RTX:
        _check_rtx_targets(trt, targets)
    return BuildPlatform(flavour, trt, targets, gpu, driver.driver_version if driver else None)
