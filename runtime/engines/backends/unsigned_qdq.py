"""Signed int8 activation Q/DQ pairs re-expressed as unsigned, for ONNX Runtime's x86 CPU kernels.

TensorRT takes only signed int8 Q/DQ (zero point 0), which is how ``vqa-rt quantize
--mode int8`` writes activations. ONNX Runtime's x86 CPU provider fuses Q/DQ around a
MatMul into its int8 kernels only for unsigned activations; signed ones run as
dequantize-then-float, slower than the unquantized model. A QuantizeLinear /
DequantizeLinear pair with int8 zero point z gives exactly the values of the same pair
with uint8 zero point z + 128 (the quantized integers and their clipping range shift by
128, the scale is unchanged), so the runner makes that substitution in memory before
creating a CPU session. Weights (constant inputs) stay signed, as the kernels expect.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from vqa_rt.runtime.engines.onnx_graph import consumers


def unsigned_activations(model: onnx.ModelProto) -> int:
    """Re-express, in place, each activation QuantizeLinear with a scalar int8 zero point (and the
    DequantizeLinear nodes reading it) with a uint8 zero point; returns how many were changed."""
    graph = model.graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    readers = consumers(graph)
    changed, replaced = 0, set()
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3 or node.input[0] in constants:
            continue
        zero_point = constants.get(node.input[2])
        dequantizers = readers.get(node.output[0], [])
        if (zero_point is None or zero_point.data_type != TensorProto.INT8 or zero_point.dims
                or not dequantizers or any(d.op_type != "DequantizeLinear" for d in dequantizers)
                or node.output[0] in {o.name for o in graph.output}):
            continue
        value = int(numpy_helper.to_array(zero_point)) + 128
        unsigned = numpy_helper.from_array(np.array(value, np.uint8), f"{node.output[0]}_unsigned_zero_point")
        graph.initializer.append(unsigned)
        for quant_node in (node, *dequantizers):
            quant_node.input[2] = unsigned.name
        replaced.add(zero_point.name)
        changed += 1
    used = {name for node in graph.node for name in node.input}
    unused = [tensor for tensor in graph.initializer if tensor.name in replaced - used]
    for tensor in unused:
        graph.initializer.remove(tensor)
    return changed


def cpu_model(path: str) -> str | bytes:
    """What to give ONNX Runtime's CPU provider for ``path``: the path itself, or, for a model with
    signed activation Q/DQ held in one file, its serialised re-expression."""
    model = onnx.load(path, load_external_data=False)
    if not any(node.op_type == "QuantizeLinear" for node in model.graph.node) or any(
            tensor.data_location == TensorProto.EXTERNAL for tensor in model.graph.initializer):
        return path
    return model.SerializeToString() if unsigned_activations(model) else path
