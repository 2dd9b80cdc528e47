"""Exporting an NR checkpoint too large to hold in float32 (a 7B VLM needs 28 GB): its weights are streamed,
one tensor at a time, from the checkpoint into a weight-only quantized ONNX file with external data.

The graph is exported from the scorer on the meta device, so no weight exists in memory. Each linear
layer's ``MatMul`` with a transposed weight then becomes ONNX Runtime's ``MatMulNBits`` (the operator
``vqa-rt quantize --mode int4-weight-only|int8-weight-only`` writes: symmetric blocks of 32 along K),
and every initializer gets a lazy tensor: when the file is written, it reads its checkpoint tensor and,
for a linear layer, quantizes it with ONNX Runtime's own block quantizer. Peak memory is about one float32
weight matrix plus the writer's buffer; the float model is never materialised, so the file cannot be
checked against PyTorch: it is checked to load and run on ONNX Runtime, and the tests check the
mechanics against the in-memory export + quantization on small models.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import onnx_ir as ir
import torch

from vqa_rt.errors import ModelError
from vqa_rt.export.models.checkpoint import LoadedModel
from vqa_rt.export.models.hf_checkpoint import CheckpointPlan, TensorSource, meta_scorer
from vqa_rt.export.models.spec import ModelSpec
from vqa_rt.export.onnx_tools.files import external_data, write_model_files
from vqa_rt.export.onnx_tools.quantize_modes import MODES, WEIGHT_BLOCK, WEIGHT_ONLY_ACCURACY_LEVEL
from vqa_rt.export.quiet import quiet
from vqa_rt.export.to_onnx.onnx_export import DEFAULT_OPSET, EXPORT_BATCH, build_metadata, dynamic_shapes

STREAMED_MODES = {8: "int8-weight-only", 4: "int4-weight-only"}
WRITE_BUFFER = 64 << 20  # bytes the writer holds at once


@dataclass
class StreamedExport:
    """What a streamed export wrote: the mode, how many linear layers it quantized, its file sizes and a check run."""

    mode: str
    quantized_layers: int
    onnx_bytes: int
    data_bytes: int
    check: str

    def summary(self) -> str:
        return (f"{self.mode}: {self.quantized_layers} linear layers quantized while streaming; "
                f"{self.onnx_bytes / 1e6:.1f} MB graph + {self.data_bytes / 1e6:.1f} MB weights; {self.check}")


class _BlockQuantizer:
    """ONNX Runtime's block quantizer of a linear layer's weight, each weight quantized once (the packed
    weight and its scales are written one after the other)."""

    def __init__(self, bits: int):
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            DefaultWeightOnlyQuantizer,
        )

        config = DefaultWeightOnlyQuantConfig(block_size=WEIGHT_BLOCK, is_symmetric=True,
                                              accuracy_level=WEIGHT_ONLY_ACCURACY_LEVEL, bits=bits)
        self.quantizer = DefaultWeightOnlyQuantizer(config)
        self.last: tuple[str, tuple[np.ndarray, np.ndarray]] | None = None

    def quantized(self, name: str, read: TensorSource) -> tuple[np.ndarray, np.ndarray]:
        """(packed weight, scales) of the (N, K) weight ``read`` gives, as MatMulNBits takes them."""
        if self.last is None or self.last[0] != name:
            weight = read().numpy()
            packed, scales, _ = self.quantizer.qbits_block_quant(np.ascontiguousarray(weight.T))
            self.last = name, (packed, scales)
        return self.last[1]


def _lazy(value, make: Callable[[], np.ndarray]):
    """A tensor for ``value`` that ``make`` computes when it is written."""
    return ir.LazyTensor(lambda: ir.Tensor(make(), name=value.name), dtype=value.dtype, shape=value.shape,
                         name=value.name)


def _checked(name: str, shape: list[int], read: TensorSource) -> torch.Tensor:
    """``read()``, which must have the graph's ``shape`` (a checkpoint that does not fit stops the export)."""
    tensor = read()
    if list(tensor.shape) != shape:
        raise ModelError(f"checkpoint tensor {name}: shape {list(tensor.shape)}, the model needs {shape}")
    return tensor


def _transposed_weight(node, initializers) -> str | None:
    """The initializer name of ``node``'s weight when it is a MatMul by a transposed 2-D initializer."""
    producer = node.inputs[1].producer() if node.op_type == "MatMul" and node.inputs[1] is not None else None
    if producer is None or producer.op_type != "Transpose" or len(node.inputs[1].uses()) != 1:
        return None
    weight = producer.inputs[0]
    perm = producer.attributes.get_ints("perm", None)
    if weight is None or weight.name not in initializers or len(weight.shape) != 2 or list(perm or []) != [1, 0]:
        return None
    return weight.name


def _quantized_values(graph, name: str, read: TensorSource, quantizer: _BlockQuantizer, bits: int):
    """The packed weight and scales initializers of weight ``name`` (N, K), lazily quantized."""
    rows, depth = graph.initializers[name].shape
    blocks = -(-depth // WEIGHT_BLOCK)
    packed = ir.Value(name=f"{name}_Q{bits}", type=ir.TensorType(ir.DataType.UINT8),
                      shape=ir.Shape([rows, blocks, WEIGHT_BLOCK * bits // 8]))
    scales = ir.Value(name=f"{name}_scales", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([rows, blocks]))
    packed.const_value = _lazy(packed, lambda: quantizer.quantized(name, read)[0])
    scales.const_value = _lazy(scales, lambda: quantizer.quantized(name, read)[1])
    for value in (packed, scales):
        graph.register_initializer(value)
    return packed, scales


def _quantize_linear_layers(graph, sources: dict[str, TensorSource], bits: int) -> int:
    """Replace every MatMul by a transposed weight with MatMulNBits over lazily quantized tensors (a weight
    used by several MatMuls is quantized once); returns the number of weights quantized."""
    quantizer = _BlockQuantizer(bits)
    quantized: dict[str, tuple] = {}
    for node in list(graph):
        name = _transposed_weight(node, graph.initializers)
        if name is None:
            continue
        if name not in quantized:
            quantized[name] = _quantized_values(graph, name, sources[name], quantizer, bits)
        rows, depth = graph.initializers[name].shape
        transpose = node.inputs[1].producer()
        replacement = ir.node("MatMulNBits", inputs=[node.inputs[0], *quantized[name]], domain="com.microsoft",
                              attributes={"K": depth, "N": rows, "bits": bits, "block_size": WEIGHT_BLOCK,
                                          "accuracy_level": WEIGHT_ONLY_ACCURACY_LEVEL})
        ir.convenience.replace_nodes_and_values(graph, node, [node], [replacement], node.outputs,
                                                replacement.outputs)
        graph.remove(transpose, safe=True)
    for name in quantized:
        if not graph.initializers[name].uses():
            graph.initializers.pop(name)
    graph.opset_imports["com.microsoft"] = 1
    return len(quantized)


def _run_check(path: str, config, input_name: str) -> str:
    """Load the written model on ONNX Runtime and score one random frame (or clip)."""
    from vqa_rt.export.to_onnx.validate import oracle_session

    session = oracle_session(path)
    pixels = np.random.default_rng(0).standard_normal(config.input_shape(1)).astype(np.float32)
    score, probs, logits = session.run(None, {input_name: pixels})
    if not (np.isfinite(logits).all() and abs(float(probs.sum()) - 1) < 1e-4):
        raise ModelError(f"{path}: the streamed model runs but gives non-finite logits or probabilities that do not "
                         "sum to 1")
    return f"ONNX Runtime loads it and scores a random input ({float(score[0]):.4f}); not compared with PyTorch"


def export_streamed(spec: ModelSpec, plan: CheckpointPlan, output: str, bits: int, opset: int = DEFAULT_OPSET,
                    check: bool = True) -> StreamedExport:
    """Export ``plan``'s scorer to ``output`` (+ ``output.data``), its linear layers quantized to ``bits``
    (4 or 8) while the weights stream from the checkpoint; ``check``: then load and run it once."""
    if bits not in STREAMED_MODES:
        raise ModelError(f"a streamed export quantizes weights to 8 or 4 bits, not {bits}")
    model = meta_scorer(plan)
    # The constant buffers (rotary tables, mask, level weights) are real; moving the model to meta keeps these.
    sources = {**plan.sources, **{name: buffer.clone for name, buffer in model.named_buffers() if not buffer.is_meta}}
    model = model.to("meta")
    example = torch.zeros(plan.config.input_shape(EXPORT_BATCH), device="meta")
    with quiet("torch.onnx", "torch.export", "torch._dynamo"), torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(model, (example,), input_names=list(spec.input_names),
                                    output_names=list(spec.output_names), dynamic_shapes=dynamic_shapes(spec),
                                    opset_version=opset, dynamo=True, optimize=False, verbose=False)
    ir_model = program.model
    graph = ir_model.graph
    missing = [name for name in graph.initializers if name not in sources]
    if missing:
        raise ModelError(f"{plan.directory}: no checkpoint tensor for {', '.join(missing[:5])}")
    sources = {name: partial(_checked, name, list(value.shape), sources[name])
               for name, value in graph.initializers.items()}
    count = _quantize_linear_layers(graph, sources, bits)
    for name, value in graph.initializers.items():
        if isinstance(value.const_value, ir.LazyTensor):
            continue
        value.const_value = _lazy(value, lambda read=sources[name]: read().numpy())
    mode = STREAMED_MODES[bits]
    loaded = LoadedModel(model, plan.config, untrained=False, source=plan.directory)
    record = {"mode": mode, "description": MODES[mode].description, "target": MODES[mode].target,
              "source": plan.directory, "streamed": True, "fidelity": None}
    for key, value in {**build_metadata(spec, loaded), "vqa_rt.quantization": json.dumps(record)}.items():
        ir_model.metadata_props[key] = value
    ir_model.producer_name = "vqa-rt"
    write_model_files(output, lambda path: ir.save(ir_model, path, external_data=os.path.basename(external_data(path)),
                                                   max_workers=1, max_in_flight_bytes=WRITE_BUFFER))
    outcome = _run_check(output, plan.config, spec.input_names[0]) if check else "not run"
    return StreamedExport(mode, count, os.path.getsize(output), os.path.getsize(external_data(output)), outcome)

