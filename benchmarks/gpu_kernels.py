"""GPU kernels: libvqa_kernels' deformable convolution and YUV->RGB pre-processing on a CUDA GPU.

Deformable convolution, FP32 and FP16, at the FR model's ``DeformConv`` shapes for a 1920x1080 input
(read off the model itself, run on PyTorch's meta device), against PyTorch-CUDA reference
implementations of the same op: vqa-rt's pure-PyTorch ``deform_conv2d`` (the exporter's reference:
one ``grid_sample`` for all taps, then a matmul) and, where torchvision is installed,
``torchvision.ops.deform_conv2d``. YUV 4:2:0 -> normalised RGB throughput as a fraction of the
device memory bandwidth, measured here by a device-to-device copy.

CUDA events around each timed call, warm-up calls first, the median of the repetitions; the inputs
rotate among several sets larger together than the L2 cache. Before any timing, every kernel's
output (NaN-poisoned first) is checked: the deformable conv against the float64 PyTorch reference
on the same (FP16-rounded, for FP16) inputs, relative L2 error FP32 <= 1e-5, FP16 <= 2e-3; the
YUV->RGB kernel against runtime/frames/color.py, max abs error <= 1e-5 of the values' range (FP32). A
kernel that fails its check has its speed reported but does not meet a target.

Needs a CUDA GPU, torch with CUDA and libvqa_kernels.so (``make kernels``, or ``--library``).
Without them it says what is missing on one line, exits 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable

import numpy as np
from common import load_average, machine_info, machine_line, main, table

FR_SIZE = (1920, 1080)  # the input the deformable-conv shapes are read at
TOLERANCE = {"float32": 1e-5, "float16": 2e-3}  # relative L2 error vs the float64 reference
YUV_TOLERANCE = 1e-5  # max abs error / max(1, max |expected|), FP32 output
DEFORM_TARGET = 10.0  # speed-up over the pure-PyTorch reference
BANDWIDTH_TARGET = 0.70  # fraction of the measured copy bandwidth
OFFSET_STD = 2.0  # pixels; sampling positions spread over a few pixels as a trained predictor's do
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # the FR model's normalisation

# (width, height, bit depth, output dtype, analysis size or None)
YUV_CASES = [
    (1920, 1080, 8, "float32", None),
    (1920, 1080, 10, "float32", None),
    (3840, 2160, 8, "float32", None),
    (3840, 2160, 10, "float32", None),
    (3840, 2160, 10, "float16", None),
    (3840, 2160, 10, "float32", (1920, 1080)),
]


class Plan:
    """Repetitions per measurement."""

    def __init__(self, quick: bool):
        self.name = "quick" if quick else "full"
        self.warmup = 3 if quick else 10
        self.reps = 10 if quick else 50
        self.copy_bytes = (256 if quick else 1024) * 2**20


# --- the GPU --------------------------------------------------------------------------------


def fail(message: str):
    print(f"gpu_kernels: error: {message}", file=sys.stderr)
    sys.exit(2)


def require_gpu(library_path: str | None):
    """(torch, the loaded KernelLibrary) on a visible CUDA GPU; exits with one line saying what is missing."""
    from vqa_rt.errors import VqaRtError
    from vqa_rt.runtime.engines.native.kernel_library import KernelLibrary

    try:
        import torch
    except ImportError:
        fail("torch is not installed (the references and the device memory are torch's)")
    if not torch.cuda.is_available():
        fail(f"no GPU visible to torch {torch.__version__} (CUDA build: {torch.version.cuda or 'none'})")
    try:
        kernels = KernelLibrary(library_path)
        kernels.device_count()
    except VqaRtError as exc:
        fail(str(exc))
    torch.cuda.init()
    return torch, kernels


def gpu_info(torch, kernels) -> dict:
    props = torch.cuda.get_device_properties(0)
    return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count, "l2_cache_mib": props.L2_cache_size / 2**20,
            "memory_gib": round(props.total_memory / 2**30, 1), "cuda_runtime_torch": torch.version.cuda,
            "torch": torch.__version__, "kernels_build": kernels.build_info(), "kernels_library": kernels.path}


def event_times_ms(torch, call: Callable[[int], object], reps: int, warmup: int) -> list[float]:
    """Milliseconds of ``call(i)`` for i in range(reps), each between two CUDA events on the current
    stream, after ``warmup`` untimed calls."""
    for i in range(warmup):
        call(i)
    torch.cuda.synchronize()
    events = []
    for i in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call(i)
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return [start.elapsed_time(end) for start, end in events]


def timing(times_ms: list[float]) -> dict:
    return {"median_ms": statistics.median(times_ms), "min_ms": min(times_ms), "max_ms": max(times_ms),
            "times_ms": times_ms}


def stream_handle(torch) -> int:
    return torch.cuda.current_stream().cuda_stream


def copy_bandwidth(torch, plan: Plan) -> dict:
    """Device-to-device copy of ``plan.copy_bytes``: bytes read plus bytes written per second."""
    src = torch.randint(0, 255, (plan.copy_bytes,), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    times = event_times_ms(torch, lambda i: dst.copy_(src), plan.reps, plan.warmup)
    if not torch.equal(dst, src):
        raise RuntimeError("the device-to-device copy did not copy")
    median_s = statistics.median(times) / 1000
    return {"bytes_copied": plan.copy_bytes, "gb_per_s": 2 * plan.copy_bytes / median_s / 1e9, **timing(times)}


def input_sets(per_set_bytes: int, l2_bytes: int, most: int = 16) -> int:
    """How many input sets to rotate so that together they are at least four L2 caches (2..``most``)."""
    return max(2, min(most, math.ceil(4 * l2_bytes / max(per_set_bytes, 1))))


# --- deformable convolution ------------------------------------------------------------------


def fr_deform_layers(width: int, height: int) -> list[dict]:
    """The FR model's DeformConv problems for a ``width`` x ``height`` input: the model (default
    config) run on the meta device, each deformable conv's input shapes recorded."""
    import torch

    from vqa_rt.export.models.deform_conv import DeformConv2d
    from vqa_rt.export.models.fr import FRModel

    with torch.device("meta"):
        model = FRModel()
    layers: list[dict] = []

    def record(module, args):
        x = args[0]
        s, p, d = module.stride, module.padding, module.dilation
        layers.append({"x": list(x.shape), "weight": list(module.weight.shape), "stride": [s, s],
                       "pads": [p, p, p, p], "dilation": [d, d], "group": module.group,
                       "offset_group": module.offset_group})

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, DeformConv2d)]
    frame = torch.empty(1, 3, height, width, device="meta")
    with torch.no_grad():
        model(frame, frame, frame, frame)
    for hook in hooks:
        hook.remove()
    return layers


def layer_params(layer: dict):
    from vqa_rt.runtime.engines.native.kernel_library import deform_conv_params

    return deform_conv_params(layer["x"], layer["weight"], layer["stride"], layer["pads"], layer["dilation"],
                              layer["group"], layer["offset_group"])


def layer_inputs(torch, params, seed: int, dtype) -> dict:
    """Fresh random x, weight, offset (std OFFSET_STD pixels), mask in [0, 1) and bias on the GPU."""
    taps = params.kernel_h * params.kernel_w
    generator = torch.Generator(device="cuda").manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=generator, device="cuda")).to(dtype)

    n, c, h, w = params.batch, params.in_channels, params.in_height, params.in_width
    oh, ow, oc = params.out_height, params.out_width, params.out_channels
    fan_in = c // params.group * taps
    return {"x": randn(n, c, h, w), "weight": randn(oc, c // params.group, params.kernel_h, params.kernel_w,
                                                    scale=fan_in ** -0.5),
            "offset": randn(n, params.offset_group * taps * 2, oh, ow, scale=OFFSET_STD),
            "mask": torch.rand(n, params.offset_group * taps, oh, ow, generator=generator, device="cuda").to(dtype),
            "bias": randn(oc)}


def relative_error(torch, actual, expected) -> float:
    """||actual - expected|| / ||expected|| in float64 (inf when ``actual`` has a NaN: an unwritten output)."""
    actual = actual.double()
    if torch.isnan(actual).any():
        return math.inf
    return float(torch.linalg.vector_norm(actual - expected) / torch.linalg.vector_norm(expected))


class DeformConvRun:
    """One layer in one dtype: the kernel (with its workspace) and the references, on rotating input sets."""

    def __init__(self, torch, kernels, layer: dict, dtype: str, sets: int):
        from vqa_rt.export.models.deform_conv import deform_conv2d

        self.torch, self.kernels, self.layer, self.dtype = torch, kernels, layer, dtype
        self.torch_dtype = getattr(torch, dtype)
        self.params = layer_params(layer)
        self.sets = [layer_inputs(torch, self.params, seed, self.torch_dtype) for seed in range(sets)]
        p = self.params
        self.out = torch.empty(p.batch, p.out_channels, p.out_height, p.out_width, dtype=self.torch_dtype,
                               device="cuda")
        self.workspace_bytes = kernels.deform_conv_workspace_size(p, dtype)
        self.workspace = torch.empty(max(self.workspace_bytes, 1), dtype=torch.uint8, device="cuda")
        self.reference_op = deform_conv2d
        self.torchvision_unavailable: str | None = None

    def kernel(self, i: int) -> None:
        t = self.sets[i % len(self.sets)]
        self.kernels.deform_conv_forward(
            self.params, self.dtype, t["x"].data_ptr(), t["weight"].data_ptr(), t["offset"].data_ptr(),
            t["mask"].data_ptr(), t["bias"].data_ptr(), self.out.data_ptr(), self.workspace.data_ptr(),
            self.workspace_bytes, stream_handle(self.torch))

    def reference(self, i: int, cast=None):
        t = self.sets[i % len(self.sets)]
        if cast is not None:
            t = {name: tensor.to(cast) for name, tensor in t.items()}
        layer = self.layer
        return self.reference_op(t["x"], t["weight"], t["offset"], t["mask"], t["bias"], stride=layer["stride"],
                                 padding=layer["pads"], dilation=layer["dilation"], group=layer["group"],
                                 offset_group=layer["offset_group"])

    def torchvision(self, i: int):
        from torchvision.ops import deform_conv2d

        t, layer = self.sets[i % len(self.sets)], self.layer
        return deform_conv2d(t["x"], t["offset"], t["weight"], t["bias"], stride=layer["stride"],
                             padding=layer["pads"][:2], dilation=layer["dilation"], mask=t["mask"])

    def check(self) -> dict:
        """Relative errors against the float64 reference on set 0: the kernel's (output NaN-poisoned
        first) and the float-``dtype`` references'."""
        torch = self.torch
        expected = self.reference(0, cast=torch.float64)
        self.out.fill_(float("nan"))
        self.kernel(0)
        torch.cuda.synchronize()
        errors = {"kernel": relative_error(torch, self.out, expected),
                  "pytorch_reference": relative_error(torch, self.reference(0), expected)}
        try:
            errors["torchvision"] = relative_error(torch, self.torchvision(0), expected)
        except Exception as exc:  # not installed, or no kernel for this dtype: reported, not timed
            errors["torchvision"] = None
            self.torchvision_unavailable = f"{type(exc).__name__}: {exc}"
        return errors


def flops(params) -> float:
    """Multiply-adds x 2 of the convolution (sampling and bilinear weights not counted)."""
    return (2.0 * params.batch * params.out_channels * params.out_height * params.out_width
            * params.in_channels // params.group * params.kernel_h * params.kernel_w)


def bench_deform(torch, kernels, plan: Plan) -> list[dict]:
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    rows = []
    for index, layer in enumerate(fr_deform_layers(*FR_SIZE)):
        p = layer_params(layer)
        offset_and_mask = p.offset_group * p.kernel_h * p.kernel_w * 3 * p.batch * p.out_height * p.out_width
        values_per_set = math.prod(layer["x"]) + offset_and_mask
        for dtype in ("float32", "float16"):
            per_set = (4 if dtype == "float32" else 2) * values_per_set
            run = DeformConvRun(torch, kernels, layer, dtype, input_sets(per_set, l2))
            print(f"[deform] layer {index} {layer['x']} -> {p.out_channels} {dtype}: {len(run.sets)} input sets",
                  flush=True)
            errors = run.check()
            kernel = timing(event_times_ms(torch, run.kernel, plan.reps, plan.warmup))
            reference = timing(event_times_ms(torch, run.reference, plan.reps, plan.warmup))
            row = {"layer": index, **layer, "out": [p.batch, p.out_channels, p.out_height, p.out_width],
                   "dtype": dtype, "gflop": flops(p) / 1e9, "input_sets": len(run.sets),
                   "workspace_bytes": run.workspace_bytes, "relative_error": errors,
                   "tolerance": TOLERANCE[dtype], "correct": errors["kernel"] <= TOLERANCE[dtype],
                   "kernel": kernel, "pytorch_reference": reference,
                   "speedup_vs_pytorch_reference": reference["median_ms"] / kernel["median_ms"],
                   "kernel_tflop_per_s": flops(p) / kernel["median_ms"] / 1e9}
            if errors["torchvision"] is not None:
                row["torchvision"] = timing(event_times_ms(torch, run.torchvision, plan.reps, plan.warmup))
                row["speedup_vs_torchvision"] = row["torchvision"]["median_ms"] / kernel["median_ms"]
            else:
                row["torchvision_unavailable"] = run.torchvision_unavailable
            rows.append(row)
            del run
            torch.cuda.empty_cache()
    return rows


# --- YUV -> RGB -------------------------------------------------------------------------------


def yuv_frame(width: int, height: int, bit_depth: int, seed: int):
    """A random 4:2:0 Frame whose codes span the whole range."""
    from vqa_rt.runtime.frames.video import Frame

    rng = np.random.default_rng(seed)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    chroma = ((height + 1) // 2, (width + 1) // 2)
    planes = [rng.integers(0, 1 << bit_depth, shape).astype(dtype) for shape in ((height, width), chroma, chroma)]
    return Frame(seed, *planes, bit_depth)


def bench_yuv(torch, kernels, plan: Plan, bandwidth_gb_s: float) -> list[dict]:
    from vqa_rt.runtime.engines.native.kernel_library import yuv_to_rgb_params
    from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb

    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    rows = []
    for width, height, bit_depth, dtype, size in YUV_CASES:
        out_width, out_height = size or (width, height)
        frame = yuv_frame(width, height, bit_depth, seed=width + bit_depth)
        in_bytes = frame.y.nbytes + frame.u.nbytes + frame.v.nbytes
        out_bytes = 3 * out_width * out_height * (4 if dtype == "float32" else 2)
        sets = input_sets(in_bytes + out_bytes, l2)
        frames = [frame] + [yuv_frame(width, height, bit_depth, seed=frame.index + s) for s in range(1, sets)]
        planes = [[torch.from_numpy(p).cuda() for p in (f.y, f.u, f.v)] for f in frames]
        outs = [torch.empty(3, out_height, out_width, dtype=getattr(torch, dtype), device="cuda") for _ in range(sets)]
        params = yuv_to_rgb_params(width, height, bit_depth, "bt709", "limited", size, MEAN, STD, dtype)

        def convert(i: int) -> None:
            y, u, v = planes[i % sets]
            kernels.yuv420_to_rgb(params, y.data_ptr(), u.data_ptr(), v.data_ptr(), outs[i % sets].data_ptr(),
                                  stream_handle(torch))

        label = f"{width}x{height} {bit_depth}-bit -> {dtype}" + (f" {out_width}x{out_height}" if size else "")
        print(f"[yuv] {label}: {sets} input sets", flush=True)
        outs[0].fill_(float("nan"))
        convert(0)
        torch.cuda.synchronize()
        expected = normalize(yuv_to_rgb(frame, "bt709", "limited", size), MEAN, STD)
        actual = outs[0].float().cpu().numpy()
        error = float(np.abs(actual - expected).max() / max(1.0, float(np.abs(expected).max())))
        tolerance = YUV_TOLERANCE if dtype == "float32" else 2.0 ** -10
        times = timing(event_times_ms(torch, convert, plan.reps, plan.warmup))
        gb_per_s = (in_bytes + out_bytes) / (times["median_ms"] / 1000) / 1e9
        rows.append({"width": width, "height": height, "bit_depth": bit_depth, "dtype": dtype,
                     "out_width": out_width, "out_height": out_height, "bytes_read": in_bytes,
                     "bytes_written": out_bytes, "input_sets": sets, "max_error": error, "tolerance": tolerance,
                     "correct": bool(error <= tolerance), **times, "gb_per_s": gb_per_s,
                     "fraction_of_copy_bandwidth": gb_per_s / bandwidth_gb_s,
                     "frames_per_s": 1000 / times["median_ms"]})
        planes = outs = None  # free this case's device buffers before the next case allocates
    return rows


# --- the run and its report -------------------------------------------------------------------


def assess(results: dict) -> list[dict]:
    deform, yuv = results["deform_conv"], results["yuv_to_rgb"]
    targets = []
    for dtype in ("float32", "float16"):
        rows = [r for r in deform if r["dtype"] == dtype]
        worst = min(r["speedup_vs_pytorch_reference"] for r in rows)
        targets.append({"target": f"deformable conv {dtype} >= {DEFORM_TARGET:.0f}x the PyTorch reference "
                                  "(every FR layer at 1080p, and correct)",
                        "measured": worst, "met": worst >= DEFORM_TARGET and all(r["correct"] for r in rows)})
    worst = min(r["fraction_of_copy_bandwidth"] for r in yuv)
    targets.append({"target": f"YUV->RGB >= {BANDWIDTH_TARGET:.0%} of the measured copy bandwidth (every case, "
                              "and correct)",
                    "measured": worst, "met": worst >= BANDWIDTH_TARGET and all(r["correct"] for r in yuv)})
    return targets


def run(args: argparse.Namespace) -> dict:
    torch, kernels = require_gpu(args.library)
    plan = Plan(args.quick)
    machine = machine_info(**gpu_info(torch, kernels))
    bandwidth = copy_bandwidth(torch, plan)
    print(f"[copy] {bandwidth['gb_per_s']:.0f} GB/s (read + written)", flush=True)
    results = {"machine": machine,
               "settings": {"mode": plan.name, "warmup": plan.warmup, "reps": plan.reps, "fr_size": list(FR_SIZE),
                            "offset_std_px": OFFSET_STD, "tf32": torch.backends.cuda.matmul.allow_tf32},
               "copy_bandwidth": bandwidth,
               "deform_conv": bench_deform(torch, kernels, plan),
               "yuv_to_rgb": bench_yuv(torch, kernels, plan, bandwidth["gb_per_s"])}
    machine["load_average_end"] = load_average()
    results["targets"] = assess(results)
    return results


def render_markdown(results: dict) -> str:
    m = results["machine"]
    software = (f"torch {m['torch']} (CUDA {m['cuda_runtime_torch']}), kernels: {m['kernels_build']}")
    gpu = (f"**{m['gpu']}** (compute capability {m['compute_capability']}, {m['multiprocessors']} SMs, "
           f"{m['l2_cache_mib']:.0f} MiB L2, {m['memory_gib']} GiB)")
    copy = results["copy_bandwidth"]
    lines = ["# GPU kernels: deformable convolution and YUV->RGB", "",
             f"Mode: **{results['settings']['mode']}**. GPU: {gpu}. Host: {machine_line(m, software)}", "",
             f"Device-to-device copy: **{copy['gb_per_s']:.0f} GB/s** (bytes read + written, "
             f"{copy['bytes_copied'] / 2**20:.0f} MiB copied, median of {len(copy['times_ms'])}).", "",
             "## Deformable convolution at the FR model's layers for a 1920x1080 input", "",
             "Kernel: `vqa_deform_conv_forward` (libvqa_kernels). PyTorch reference: vqa-rt's pure-PyTorch "
             "`deform_conv2d` on CUDA in the same dtype (TF32 off). Errors are relative L2 against the "
             "float64 reference on the same inputs.", ""]
    rows = []
    for r in results["deform_conv"]:
        tv = f"{r['speedup_vs_torchvision']:.1f}x" if "speedup_vs_torchvision" in r else "n/a"
        rows.append([f"{r['layer']}: {'x'.join(map(str, r['x']))} -> {r['out'][1]}", r["dtype"],
                     f"{r['kernel']['median_ms']:.3f}", f"{r['pytorch_reference']['median_ms']:.3f}",
                     f"**{r['speedup_vs_pytorch_reference']:.1f}x**", tv, f"{r['kernel_tflop_per_s']:.1f}",
                     f"{r['relative_error']['kernel']:.1e}" + ("" if r["correct"] else " **FAILS**")])
    lines += table(["layer (input -> out channels)", "dtype", "kernel ms", "PyTorch ref ms", "speed-up",
                    "vs torchvision", "kernel TFLOP/s", "rel. error"], rows)
    lines += ["", "## YUV 4:2:0 -> normalised planar RGB (BT.709 limited, ImageNet mean/std)", ""]
    rows = [[f"{r['width']}x{r['height']} {r['bit_depth']}-bit", r["dtype"], f"{r['out_width']}x{r['out_height']}",
             f"{r['median_ms']:.3f}", f"{r['frames_per_s']:.0f}", f"{r['gb_per_s']:.0f}",
             f"**{r['fraction_of_copy_bandwidth']:.0%}**", f"{r['max_error']:.1e}" + ("" if r["correct"] else
                                                                                     " **FAILS**")]
            for r in results["yuv_to_rgb"]]
    lines += table(["input", "output", "output size", "ms/frame", "frames/s", "GB/s", "of copy bandwidth",
                    "max error"], rows)
    verdicts = {True: "yes", False: "**no**"}
    lines += ["", "GB/s counts each input byte read once and each output byte written once.", "",
              "## Targets", "",
              *table(["target", "measured (worst case)", "met"],
                     [[t["target"], f"{t['measured']:.2f}", verdicts[t["met"]]] for t in results["targets"]]),
              "", f"Medians of {results['settings']['reps']} CUDA-event-timed calls after "
              f"{results['settings']['warmup']} warm-up calls; inputs rotate among several sets. "
              "Raw times are in `gpu_kernels.json`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main("gpu_kernels", __doc__, run, render_markdown,
         {"--quick": {"action": "store_true", "help": "fewer repetitions and a smaller copy: a smoke run"},
          "--library": {"default": None, "help": "libvqa_kernels.so (default: $VQA_KERNELS_LIBRARY, then "
                                                 "build/kernels/lib)"}})
