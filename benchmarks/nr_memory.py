"""Peak memory of exporting and running a large NR checkpoint: the streamed weight-only export against model size.

A 7B mPLUG-Owl2 (Q-Align, OneAlign) is 28 GB in float32, more than a 24 GB machine holds. This benchmark
proves the mechanics at reduced scale: random mPLUG-Owl2 checkpoints with the **real 7B layer widths**
(Llama-2-7B decoder 4096 / 11008 / 32 heads / vocabulary 32000, CLIP ViT-L/14 at 448, the 64-query
abstractor) but few layers, written as float16 shards like the released checkpoints (**random weights**:
the scores mean nothing; only memory and time are measured). For each size it runs, each in a fresh
process whose peak resident memory (``VmHWM``) it reports:

- ``stream``, at 4 and at 8 bits: :func:`vqa_rt.export.to_onnx.streamed.export_streamed` (the path of
  ``vqa-rt export nr --checkpoint DIR --weight-only 4|8``, without its check run);
- ``run``: ONNX Runtime (default optimisations, as ``vqa-rt score``) loads the streamed file and scores one frame;
- ``in-memory`` (small sizes only): the ordinary path, the checkpoint loaded in float32 and exported with
  :func:`~vqa_rt.export.to_onnx.onnx_export.export_onnx` (no validation), for comparison.

It fits peak memory against model size (a line per path) and extrapolates to the full 7B layer counts.
It writes ``nr_memory.json`` and ``nr_memory.md`` and asserts nothing.

Usage: ``python benchmarks/nr_memory.py [--quick] [--work-dir DIR] [--output-dir DIR]``
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from common import machine_info, machine_line, main, table

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "mplug_owl2_tiny")
FULL_7B = {"text": 32, "vision": 24, "abstractor": 6}
SIZES = [{"text": 1, "vision": 2, "abstractor": 1}, {"text": 2, "vision": 4, "abstractor": 2},
         {"text": 4, "vision": 8, "abstractor": 3}]
QUICK_SIZES = SIZES[:2]
IN_MEMORY_UP_TO = 2  # text layers: the float32 path is measured on the smaller sizes only


def _config(layers: dict) -> dict:
    return {
        "model_type": "mplug_owl2", "hidden_size": 4096, "intermediate_size": 11008,
        "num_hidden_layers": layers["text"], "num_attention_heads": 32, "num_key_value_heads": 32,
        "vocab_size": 32000, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False,
        "visual_config": {
            "visual_model": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": layers["vision"],
                             "num_attention_heads": 16, "image_size": 448, "patch_size": 14, "layer_norm_eps": 1e-6},
            "visual_abstractor": {"num_learnable_queries": 64, "hidden_size": 1024,
                                  "num_hidden_layers": layers["abstractor"], "num_attention_heads": 16,
                                  "intermediate_size": 2816, "layer_norm_eps": 1e-6, "encoder_hidden_size": 1024,
                                  "grid_size": 32},
        },
    }


def _shapes(layers: dict) -> dict[str, list[dict[str, tuple[int, ...]]]]:
    """The checkpoint's tensors (upstream names), grouped into shards: embeddings, each vision layer, the
    abstractor, each decoder layer."""
    h, m, v, vm, a, am = 4096, 11008, 1024, 4096, 1024, 2816
    vit = "model.vision_model."
    shards = [{"model.embed_tokens.weight": (32000, h), "lm_head.weight": (32000, h), "model.norm.weight": (h,),
               vit + "embeddings.cls_token": (1, 1, v), vit + "embeddings.patch_embed.weight": (v, 3, 14, 14),
               vit + "embeddings.position_embedding": (1, 1025, v), vit + "embeddings.pre_layernorm.weight": (v,),
               vit + "embeddings.pre_layernorm.bias": (v,), vit + "post_layernorm.weight": (v,),
               vit + "post_layernorm.bias": (v,)}]
    for layer in range(layers["vision"]):
        p = f"{vit}encoder.layers.{layer}."
        shards.append({p + "self_attn.query_key_value.weight": (3 * v, v), p + "self_attn.query_key_value.bias": (3 * v,),
                       p + "self_attn.dense.weight": (v, v), p + "self_attn.dense.bias": (v,),
                       p + "mlp.fc1.weight": (vm, v), p + "mlp.fc1.bias": (vm,), p + "mlp.fc2.weight": (v, vm),
                       p + "mlp.fc2.bias": (v,), **{p + f"{norm}.{w}": (v,) for norm in
                                                     ("input_layernorm", "post_attention_layernorm")
                                                     for w in ("weight", "bias")}})
    abstractor = {"model.visual_abstractor.query_embeds": (1, 64, a), "model.visual_abstractor.vit_eos": (1, 1, h),
                  "model.visual_abstractor.visual_fc.weight": (h, a), "model.visual_abstractor.visual_fc.bias": (h,)}
    for layer in range(layers["abstractor"]):
        p = f"model.visual_abstractor.encoder.layers.{layer}.crossattention."
        for name in ("attention.query", "attention.key", "attention.value", "output.out_proj"):
            abstractor |= {p + name + ".weight": (a, a), p + name + ".bias": (a,)}
        for name in ("norm1", "normk", "output.norm2"):
            abstractor |= {p + name + ".weight": (a,), p + name + ".bias": (a,)}
        abstractor |= {p + "output.mlp.w1.weight": (am, a), p + "output.mlp.w1.bias": (am,),
                       p + "output.mlp.w3.weight": (am, a), p + "output.mlp.w3.bias": (am,),
                       p + "output.mlp.w2.weight": (a, am), p + "output.mlp.w2.bias": (a,),
                       p + "output.mlp.ffn_ln.weight": (am,), p + "output.mlp.ffn_ln.bias": (am,)}
    shards.append(abstractor)
    for layer in range(layers["text"]):
        p = f"model.layers.{layer}."
        shard = {p + "self_attn.q_proj.weight": (h, h), p + "self_attn.o_proj.weight": (h, h),
                 p + "mlp.gate_proj.weight": (m, h), p + "mlp.up_proj.weight": (m, h), p + "mlp.down_proj.weight": (h, m)}
        for way in (0, 1):
            shard |= {p + f"self_attn.k_proj.multiway.{way}.weight": (h, h),
                      p + f"self_attn.v_proj.multiway.{way}.weight": (h, h),
                      p + f"input_layernorm.multiway.{way}.weight": (h,),
                      p + f"post_attention_layernorm.multiway.{way}.weight": (h,)}
        shards.append(shard)
    return shards


def make_checkpoint(directory: str, layers: dict, seed: int) -> int:
    """Write a random float16 mPLUG-Owl2 checkpoint with the real widths; returns its bytes on disk."""
    import torch
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(FIXTURE, name), directory)
    processor = json.load(open(os.path.join(FIXTURE, "preprocessor_config.json")))
    processor.update(size={"shortest_edge": 448}, crop_size={"height": 448, "width": 448})
    json.dump(processor, open(os.path.join(directory, "preprocessor_config.json"), "w"))
    json.dump(_config(layers), open(os.path.join(directory, "config.json"), "w"))
    generator = torch.Generator().manual_seed(seed)
    weight_map, total = {}, 0
    for index, shard in enumerate(_shapes(layers)):
        file = f"model-{index:05d}.safetensors"
        tensors = {name: (torch.randn(shape, generator=generator) * 0.02).half() for name, shape in shard.items()}
        for name in tensors:
            if "norm" in name and name.endswith("weight"):
                tensors[name] = torch.ones_like(tensors[name])
        save_file(tensors, os.path.join(directory, file))
        weight_map |= dict.fromkeys(tensors, file)
        total += os.path.getsize(os.path.join(directory, file))
    json.dump({"weight_map": weight_map}, open(os.path.join(directory, "model.safetensors.index.json"), "w"))
    return total


def scorer_parameters(directory: str) -> int:
    """Parameters of the scorer the checkpoint makes (what float32 export would hold: 4 bytes each)."""
    import torch

    from vqa_rt.export.models.hf_checkpoint import meta_scorer
    from vqa_rt.export.models.nr_spec import plan_hf_checkpoint

    model = meta_scorer(plan_hf_checkpoint(directory))
    return sum(t.numel() for name, t in model.state_dict().items() if isinstance(t, torch.Tensor))


# --- the measured steps, each run in a child process --------------------------------------------


def child(step: str, directory: str, output: str, bits: int) -> dict:
    from vqa_rt.export.models.spec import get_spec

    spec = get_spec("nr")
    if step == "stream":
        from vqa_rt.export.models.nr_spec import plan_hf_checkpoint
        from vqa_rt.export.to_onnx.streamed import export_streamed

        result = export_streamed(spec, plan_hf_checkpoint(directory), output, bits, check=False)
        return {"onnx_bytes": result.onnx_bytes, "data_bytes": result.data_bytes,
                "quantized_layers": result.quantized_layers}
    if step == "run":
        import onnxruntime as ort

        start = time.perf_counter()
        session = ort.InferenceSession(output, providers=["CPUExecutionProvider"])
        loaded = time.perf_counter()
        pixels = np.random.default_rng(0).standard_normal((1, 3, 448, 448)).astype(np.float32)
        score, _, _ = session.run(None, {"pixels": pixels})
        return {"load_seconds": loaded - start, "frame_seconds": time.perf_counter() - loaded,
                "score": float(score[0])}
    from vqa_rt.export.models.nr_spec import load_hf_checkpoint
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    export_onnx(spec, load_hf_checkpoint(directory), output, validate=False)
    return {"onnx_bytes": sum(os.path.getsize(path) for path in (output, output + ".data") if os.path.exists(path))}


def peak_rss_gib() -> float:
    """This process's peak resident memory (``VmHWM``: of its own address space, so not the parent's at fork
    time, which ``ru_maxrss`` would carry over)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 2**20


def measure(step: str, directory: str, output: str, bits: int) -> dict:
    """Run ``step`` in a fresh process: its result, wall time and peak resident memory."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", step, directory, output, str(bits)],
                          stdout=subprocess.PIPE, text=True, check=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": time.perf_counter() - start}


def _fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Slope and intercept of a straight line through (parameters, value) points."""
    if len(points) < 2:
        return None
    slope, intercept = np.polyfit(*zip(*points), 1)
    return float(slope), float(intercept)


def _series(rows: list[dict], path: tuple[str, ...]) -> list[tuple[float, float]]:
    """(parameters, value at ``path`` in the row) for the rows that have it."""
    points = []
    for row in rows:
        value = row
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            points.append((row["parameters"], value))
    return points


SERIES = {  # name -> where in a row
    **{f"int{bits} {step}": (f"int{bits}", step, "peak_rss_gib") for bits in (4, 8) for step in ("stream", "run")},
    **{f"int{bits} frame seconds": (f"int{bits}", "run", "frame_seconds") for bits in (4, 8)},
    "in-memory float32 export": ("in_memory", "peak_rss_gib"),
}


def run(args) -> dict:
    import onnxruntime
    import torch

    machine = machine_info(torch=torch.__version__, onnxruntime=onnxruntime.__version__)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        for index, layers in enumerate(QUICK_SIZES if args.quick else SIZES):
            directory = os.path.join(work, f"ckpt{index}")
            row = {"layers": layers, "checkpoint_bytes": make_checkpoint(directory, layers, seed=index)}
            row["parameters"] = scorer_parameters(directory)
            for bits in (4, 8):
                streamed = os.path.join(work, f"streamed{index}_{bits}.onnx")
                row[f"int{bits}"] = {"stream": measure("stream", directory, streamed, bits),
                                     "run": measure("run", directory, streamed, bits)}
            if layers["text"] <= IN_MEMORY_UP_TO:
                row["in_memory"] = measure("in-memory", directory, os.path.join(work, f"full{index}.onnx"), 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(directory)
            for leftover in os.listdir(work):
                os.remove(os.path.join(work, leftover))
    full = make_full_parameters()
    fits = {name: _fit(_series(rows, path)) for name, path in SERIES.items()}
    machine["load_average_end"] = list(os.getloadavg())
    return {"machine": machine, "settings": {"mode": "quick" if args.quick else "full"}, "rows": rows,
            "fits_per_parameter": fits, "full_7b": {
                "layers": FULL_7B, "parameters": full,
                "extrapolated": {name: fit[0] * full + fit[1] for name, fit in fits.items() if fit is not None}}}


def make_full_parameters() -> int:
    """Parameters of the full mPLUG-Owl2 7B scorer (from the shapes, nothing allocated)."""
    shards = _shapes(FULL_7B)
    total = sum(int(np.prod(shape)) for shard in shards for shape in shard.values())
    embeddings = 2 * 32000 * 4096  # the scorer keeps only the prompt's and the level words' rows
    return total - embeddings


def _gib(value: float) -> str:
    return f"{value:.2f} GiB"


def render(results: dict) -> str:
    rows, full = results["rows"], results["full_7b"]
    lines = ["# NR memory: streamed weight-only export of an mPLUG-Owl2 with the real 7B widths", "",
             machine_line(results["machine"], f"torch {results['machine']['torch']}, onnxruntime "
                          f"{results['machine']['onnxruntime']}"), "",
             "Random float16 checkpoints (untrained: memory and time only), few layers, real widths. Peak resident "
             "memory of a fresh process per step (`VmHWM`); frame time: ONNX Runtime, one 448×448 frame, one run.", ""]
    header = ["decoder / ViT / abstractor layers", "scorer params (float32 size)"]
    for bits in (4, 8):
        header += [f"int{bits} file", f"int{bits} stream export: peak, time", f"int{bits} ORT load + 1 frame: peak, "
                   "frame time"]
    header.append("in-memory float32 export: peak")
    body = []
    for row in rows:
        layers = row["layers"]
        cells = [f"{layers['text']} / {layers['vision']} / {layers['abstractor']}",
                 f"{row['parameters'] / 1e6:.0f} M ({_gib(row['parameters'] * 4 / 2**30)})"]
        for bits in (4, 8):
            stream, ran = row[f"int{bits}"]["stream"], row[f"int{bits}"]["run"]
            cells += [_gib((stream["onnx_bytes"] + stream["data_bytes"]) / 2**30),
                      f"{_gib(stream['peak_rss_gib'])}, {stream['seconds']:.0f} s",
                      f"{_gib(ran['peak_rss_gib'])}, {ran['frame_seconds']:.1f} s"]
        memory = row.get("in_memory")
        cells.append(_gib(memory["peak_rss_gib"]) if memory else "not run")
        body.append(cells)
    lines += table(header, body)
    lines += ["", f"## Extrapolated to the full 7B ({full['layers']['text']} decoder, {full['layers']['vision']} ViT, "
              f"{full['layers']['abstractor']} abstractor layers: {full['parameters'] / 1e9:.2f} B scorer parameters, "
              f"{full['parameters'] * 4 / 2**30:.1f} GiB in float32)", "",
              "A straight line through the measured values against parameters:", ""]
    for name, value in full["extrapolated"].items():
        lines.append(f"- {name}: **{value:.0f} s**" if "seconds" in name else f"- {name} peak: **{_gib(value)}**")
    lines += ["", "The streamed export holds about one weight matrix at a time plus the exporter's graph, whatever the "
              "model's size; a run holds the packed weights (int4: about 0.63 bytes per parameter with the scales, "
              "int8: 1.13) and ONNX Runtime's prepacked copy. Raw numbers in `nr_memory.json`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        result = child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        print(json.dumps({**result, "peak_rss_gib": peak_rss_gib()}))
    else:
        main("nr_memory", __doc__, run, render, {
            "--quick": {"action": "store_true", "help": "two small sizes only"},
            "--work-dir": {"default": None, "help": "where the temporary checkpoints go (default: the system's)"},
        })
