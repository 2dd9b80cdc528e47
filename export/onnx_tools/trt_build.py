"""ONNX -> TensorRT plan with either flavour: the graph steps (:mod:`~vqa_rt.export.onnx_tools.trt_graph`), the
optimisation profile (:mod:`~vqa_rt.export.onnx_tools.trt_profile`), the flavour and targets
(:mod:`~vqa_rt.export.onnx_tools.trt_targets`), then TensorRT's parser and builder.

TensorRT for RTX builds ahead of time with no GPU; full TensorRT builds on the GPU at hand. The build writes
the plan, a sidecar ``PLAN.json`` that the runtime reads (the ONNX file's ``vqa_rt.*`` metadata; flavour,
version, targets, whether a GPU was used, precision, profile, I/O, plugins, DeformConv handling and the
layer summary) and a report ``PLAN.report.json`` (the same plus every layer). Nothing is written unless the
build succeeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import onnx

import vqa_rt
from vqa_rt.errors import BackendUnavailableError, EngineBuildError, ModelError
from vqa_rt.export.onnx_tools.trt_graph import DEFORM_MODES, PRECISIONS, PreparedGraph, prepare_graph
from vqa_rt.export.onnx_tools.trt_profile import InputProfile, ShapeRange, derive_profile, graph_input_shapes
from vqa_rt.export.onnx_tools.trt_report import (
    BuildReport,
    format_parser_errors,
    io_from_layer_log,
    parse_layer_log,
    parser_error_info,
    report_path,
    summarize_layers,
)
from vqa_rt.export.onnx_tools.trt_targets import BuildPlatform, choose_platform
from vqa_rt.runtime.checks import whole_number
from vqa_rt.runtime.engines.backends.tensorrt import make_logger, start_tensorrt
from vqa_rt.runtime.engines.backends.trt_flavours import RTX, TENSORRT, target_capability
from vqa_rt.runtime.engines.metadata import PLAN_FORMAT, PLAN_FORMAT_VERSION, onnx_metadata, plan_sidecar_path
from vqa_rt.runtime.engines.native.libraries import find_plugin, register_builtin_plugins, register_plugin
from vqa_rt.runtime.engines.record import PLAN_SUFFIX, resolve_engine
from vqa_rt.runtime.outputs import check_output_paths, open_atomic, write_atomic

DEFORM_CHOICES = ("auto", *DEFORM_MODES)
MAX_WORKSPACE_MIB = 1 << 24  # 16 TiB: any larger is a typo


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp32"
    shapes: ShapeRange = ShapeRange()
    flavour: str = "auto"  # auto | tensorrt | rtx
    targets: str | None = None  # "sm80,sm89" | "native" | None (native where a GPU is visible)
    deform: str = "auto"  # auto (plugin where it is built, else decomposed) | plugin | decomposed | builtin
    workspace_mib: int | None = None  # None: TensorRT's default (the device's memory)
    timing_cache: str | None = None  # full TensorRT: read if present, written after the build
    plugin: str | None = None  # libvqa_trt_plugin.so; default: the plugin locator
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.workspace_mib is not None:
            whole_number(self.workspace_mib, "--workspace (MiB)", 1, MAX_WORKSPACE_MIB)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _deform_mode(options: BuildOptions, notes: list[str]) -> str:
    """``--deform auto``: the plugin where ``libvqa_trt_plugin.so`` is found, else the decomposition (noted)."""
    if options.deform not in DEFORM_CHOICES:
        raise EngineBuildError(f"unknown --deform {options.deform!r}; choose from {', '.join(DEFORM_CHOICES)}")
    if options.deform != "auto":
        return options.deform
    try:
        find_plugin(options.plugin)
    except BackendUnavailableError as exc:
        notes.append(f"--deform auto: the vqa-rt plugin not found ({exc}); any DeformConv decomposed into standard ops")
        return "decomposed"
    return "plugin"


def _prepare(onnx_path: str, model: onnx.ModelProto, precision: str, deform: str) -> PreparedGraph:
    try:
        return prepare_graph(model, precision, deform)
    except ModelError as exc:
        raise ModelError(f"{onnx_path}: {exc}") from None


def _register_plugins(trt, logger, prepared: PreparedGraph, platform: BuildPlatform, options: BuildOptions,
                      notes: list[str]) -> list[dict[str, str]]:
    """Load what the prepared graph's DeformConv handling needs; the plugins the plan needs at run time."""
    plugins = prepared.plugins()
    if prepared.deform == "plugin":
        plugins[0]["library"] = register_plugin(trt, options.plugin)
    elif prepared.deform == "builtin":
        if platform.flavour is RTX:
            raise EngineBuildError("TensorRT for RTX has no built-in DeformConv plugin (ModulatedDeformConv2d is in "
                                   "full TensorRT's libnvinfer_plugin); use --deform decomposed or plugin")
        register_builtin_plugins(trt, logger)
        plugins[0]["library"] = "libnvinfer_plugin"
    if options.plugin and prepared.deform != "plugin":
        notes.append(f"--plugin {options.plugin} not used: the graph has no DeformConv rewritten for it")
    return plugins


def _load_timing_cache(config, path: str | None, notes: list[str]):
    data = b""
    if path and os.path.isfile(path):
        with open(path, "rb") as handle:
            data = handle.read()
    cache = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        notes.append(f"timing cache {path} does not fit this TensorRT/GPU; started a new one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    elif data:
        notes.append(f"reused timing cache {path} ({len(data) >> 10} KiB)")


def _tensor_io(trt, engine) -> dict[str, list[dict[str, Any]]]:
    io: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        kind = "inputs" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "outputs"
        io[kind].append({"name": name, "dtype": str(engine.get_tensor_dtype(name)).rsplit(".", 1)[-1],
                         "shape": list(engine.get_tensor_shape(name))})
    return io


def _parse(trt, builder, logger, prepared: PreparedGraph, onnx_path: str, platform: BuildPlatform):
    """The network TensorRT's ONNX parser makes of the prepared graph, strongly typed: the graph alone decides
    precision (TensorRT 10 is asked to; TensorRT 11 and TensorRT for RTX have no other way)."""
    major = int(trt.__version__.split(".")[0])
    typed = platform.flavour is TENSORRT and major < 11
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if typed else 0)
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory(prefix="vqa-rt-build-") as folder:
        graph_path = os.path.join(folder, "graph.onnx")
        large = prepared.model.ByteSize() > 1_900_000_000  # protobuf's 2 GB limit
        onnx.save_model(prepared.model, graph_path, save_as_external_data=large, location="graph.onnx.data")
        parsed = parser.parse_from_file(graph_path)
    errors = [parser_error_info(parser.get_error(i)) for i in range(parser.num_errors)]
    if not parsed or errors:
        raise EngineBuildError(format_parser_errors(onnx_path, errors))
    return network, parser  # the parser must outlive the network's use


def _configure(trt, builder, network, profile: dict[str, InputProfile], options: BuildOptions,
               platform: BuildPlatform, notes: list[str]):
    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    if sorted(inputs) != sorted(profile):
        raise EngineBuildError(f"the network's inputs {inputs} differ from the graph's {list(profile)}")
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)  # FP32 layers compute in FP32, as ONNX Runtime does
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions for the report
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    optimization_profile = builder.create_optimization_profile()
    for name, shapes in profile.items():
        optimization_profile.set_shape(name, shapes.min, shapes.opt, shapes.max)
    config.add_optimization_profile(optimization_profile)
    if platform.flavour is RTX:
        capabilities = trt.ComputeCapability
        chosen = [capabilities.CURRENT] if platform.native else [capabilities.__members__[t.upper()]
                                                                 for t in platform.targets]
        config.num_compute_capabilities = len(chosen)
        for index, capability in enumerate(chosen):
            config.set_compute_capability(capability, index)
        if options.timing_cache:
            notes.append(f"--timing-cache {options.timing_cache} not used: TensorRT for RTX has no timing cache (it "
                         "tunes on the target GPU when the plan is loaded, and keeps a runtime cache beside the plan)")
    else:
        _load_timing_cache(config, options.timing_cache, notes)
    return config


def _build_failed(onnx_path: str, logger, platform: BuildPlatform, precision: str) -> EngineBuildError:
    message = f"{onnx_path}: {platform.flavour.name} failed to build the engine: {logger.last_error()}"
    if "sm75" in platform.targets and precision == "fp32":
        message += " (Turing, sm75, has no FP32 matrix multiplies in TensorRT for RTX: build sm75 with --precision " \
                   "fp16, or leave it out of --target)"
    return EngineBuildError(message + " (--verbose shows TensorRT's log)")


def _engine_information(trt, logger, serialized, platform: BuildPlatform) -> tuple[dict[str, Any], dict]:
    """The built engine's layers (inspector JSON shape) and I/O tensors. TensorRT for RTX: from the builder's
    detailed layer log (no engine can be deserialised without a GPU); full TensorRT: from its engine inspector."""
    if platform.flavour is RTX:
        if not logger.layer_log:
            raise EngineBuildError("TensorRT for RTX built the plan but logged no layer information")
        info = parse_layer_log(logger.layer_log)
        return info, io_from_layer_log(info)
    engine = start_tensorrt(trt, logger).deserialize_cuda_engine(serialized)
    if engine is None:
        raise EngineBuildError(f"the plan TensorRT just built does not deserialise: {logger.last_error()}")
    inspector = engine.create_engine_inspector()
    return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON)), _tensor_io(trt, engine)


def build_engine(onnx_path: str, plan_path: str, options: BuildOptions = BuildOptions()) -> BuildReport:
    """Build a TensorRT plan from an exported vqa-rt ONNX file; write the plan, its sidecar and report.

    Raises :class:`BackendUnavailableError` where the flavour, a GPU it needs or the plugin is missing,
    :class:`ModelError` for a model that cannot be built as asked, :class:`EngineBuildError` for a
    request or graph TensorRT cannot build. Nothing is written unless the build succeeds.
    """
    start = time.monotonic()
    if not plan_path.endswith(PLAN_SUFFIX):
        raise EngineBuildError(f"{plan_path}: the plan's name must end in {PLAN_SUFFIX} (the runtime recognises "
                               "plans by it)")
    if options.precision not in PRECISIONS:
        raise EngineBuildError(f"unknown precision {options.precision!r}; choose from {', '.join(PRECISIONS)}")
    outputs = [plan_path, plan_sidecar_path(plan_path), report_path(plan_path)]
    check_output_paths(outputs + ([options.timing_cache] if options.timing_cache else []), inputs=[onnx_path])
    model_info = resolve_engine(onnx_path).model
    # Everything that needs only the graph is checked before TensorRT is looked for.
    model = onnx.load(onnx_path)
    notes: list[str] = []
    deform = _deform_mode(options, notes)
    prepared = _prepare(onnx_path, model, options.precision, deform)
    profile = derive_profile(graph_input_shapes(prepared.model), model_info.metadata.get("dynamic_axes") or {},
                             options.shapes, model_info.min_size)
    platform = choose_platform(options.flavour, options.targets, options.precision)
    trt = platform.trt
    logger = make_logger(trt, options.verbose, echo=False)  # errors go into our one-line messages
    try:
        plugins = _register_plugins(trt, logger, prepared, platform, options, notes)
    except BackendUnavailableError as exc:
        if options.deform != "auto":
            raise
        notes.append(f"--deform auto: the vqa-rt plugin cannot be used ({exc}); DeformConv decomposed instead")
        prepared = _prepare(onnx_path, model, options.precision, "decomposed")
        plugins = []

    builder = start_tensorrt(trt, logger, "Builder")
    network, _parser = _parse(trt, builder, logger, prepared, onnx_path, platform)
    config = _configure(trt, builder, network, profile, options, platform, notes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise _build_failed(onnx_path, logger, platform, options.precision)
    plan_bytes = memoryview(serialized)
    engine_info, io = _engine_information(trt, logger, plan_bytes, platform)

    gpu = platform.gpu
    sidecar = {
        "format": PLAN_FORMAT,
        "format_version": PLAN_FORMAT_VERSION,
        "built_by": vqa_rt.__version__,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "onnx": {"path": os.path.abspath(onnx_path), "sha256": _sha256(onnx_path)},
        "metadata": onnx_metadata(model, onnx_path),
        "tensorrt": {"flavour": platform.flavour.key, "name": platform.flavour.name, "version": trt.__version__,
                     "strongly_typed": True},
        "targets": list(platform.targets),
        "target_capabilities": [target_capability(t) for t in platform.targets],
        "built_without_gpu": gpu is None,
        "gpu": None if gpu is None else {"name": gpu.name, "compute_capability": gpu.compute_capability,
                                         "memory_mib": gpu.memory_mib, "driver": platform.driver},
        "precision": options.precision,
        "deform": prepared.deform,
        "profile": {name: {"min": list(p.min), "opt": list(p.opt), "max": list(p.max)} for name, p in profile.items()},
        "io": io,
        "plugins": plugins,
        "layers": summarize_layers(engine_info),
    }
    with open_atomic(plan_path, "wb") as handle:
        handle.write(plan_bytes)
    write_atomic(plan_sidecar_path(plan_path), json.dumps(sidecar, indent=2) + "\n")
    timing_cache = options.timing_cache if platform.flavour is TENSORRT else None
    if timing_cache:
        with open_atomic(timing_cache, "wb") as handle:
            handle.write(memoryview(config.get_timing_cache().serialize()))
    notes += [f"TensorRT warned: {warning}" for warning in logger.warnings]
    report = BuildReport(plan_path, sidecar, time.monotonic() - start, prepared.describe(), engine_info,
                         timing_cache, notes)
    write_atomic(report_path(plan_path), json.dumps(report.to_dict(), indent=2) + "\n")
    return report
