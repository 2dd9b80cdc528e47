"""``DeformConv`` -> standard ONNX ops (``GridSample`` + ``MatMul``), for TensorRT parsers without a
``DeformConv`` importer (TensorRT for RTX's has none).

Each node is rewritten as the eager reference ``vqa_rt.export.models.deform_conv`` computes it:
the sampling position of output pixel (i, j) and kernel tap (a, b) is
``(i*stride_h - pad_top + a*dil_h + dy, j*stride_w - pad_left + b*dil_w + dx)``; normalised as
``(2p + 1) / size - 1`` it becomes the grid of one ``GridSample`` (bilinear, zeros padding,
``align_corners=0``) over all taps, shape (N*offset_group, taps*oH, oW, 2), on the input reshaped to
(N*offset_group, C/offset_group, H, W). The samples are multiplied by the mask, reshaped to columns
(N, group, C/group * taps, oH*oW) and multiplied by the weight reshaped to
(group, oC/group, C/group * taps); the bias is added last. N, H, W, oH and oW are read with ``Shape`` at run
time (the output size from the offset's shape, so any pads work: only pad_top and pad_left enter the
positions); channels, kernel and groups are static.

Positions reach the image size (~1000 px), where FP16 resolves only 0.5 px: the nodes that compute the
grid and sample it are returned by name, for an FP16 conversion to keep in FP32 (see
:func:`vqa_rt.export.onnx_tools.trt_graph.convert_to_fp16`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import ModelProto, TensorProto, helper, numpy_helper

from vqa_rt.errors import ModelError
from vqa_rt.runtime.engines.onnx_graph import graphs, is_deform_conv

__all__ = ["DecomposedGraph", "decompose_deform_conv"]

_LINEAR_MODE_OPSET = 20  # GridSample's mode "bilinear" was renamed "linear" in opset 20


@dataclass(frozen=True)
class DecomposedGraph:
    """A model without ``DeformConv``: the rewritten copy, how many nodes were rewritten, and the names of
    the nodes computing sampling coordinates (grid arithmetic and ``GridSample``) to keep in FP32."""

    model: ModelProto
    count: int
    fp32_nodes: tuple[str, ...]


class _Emitter:
    """Appends the nodes and constants replacing one ``DeformConv``, under names unique in the model."""

    def __init__(self, prefix: str, taken: set[str]):
        self.prefix, self.taken = prefix, taken
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.fp32_nodes: list[str] = []

    def _name(self, label: str) -> str:
        name, suffix = f"{self.prefix}/{label}", 0
        while name in self.taken:
            suffix += 1
            name = f"{self.prefix}/{label}_{suffix}"
        self.taken.add(name)
        return name

    def const(self, label: str, values, dtype) -> str:
        """A constant initializer; its name."""
        tensor = numpy_helper.from_array(np.asarray(values, dtype=dtype), self._name(label))
        self.initializers.append(tensor)
        return tensor.name

    def op(self, op_type: str, inputs: list[str], label: str, *, outputs: int = 1, output: str | None = None,
           fp32: bool = False, **attributes) -> str | list[str]:
        """A node; its output name (``output`` if given), or the list of ``outputs`` names."""
        name = self._name(label)
        if output or outputs == 1:
            names = [output or name]
        else:
            names = [self._name(f"{label}_{i}") for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=name, **attributes))
        if fp32:
            self.fp32_nodes.append(name)
        return names if outputs > 1 else names[0]


def _attributes(node: onnx.NodeProto, weight_shape: list[int]) -> dict:
    """The node's attributes with ONNX's defaults filled in."""
    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    kernel = list(values.get("kernel_shape", weight_shape[2:]))
    if len(kernel) != 2 or kernel != list(weight_shape[2:]):
        raise ModelError(f"DeformConv node {node.name!r}: kernel_shape {kernel} does not match the 2-D weight "
                         f"{weight_shape}")
    return {
        "kernel": kernel,
        "strides": list(values.get("strides", [1, 1])),
        "pads": list(values.get("pads", [0, 0, 0, 0])),
        "dilations": list(values.get("dilations", [1, 1])),
        "group": values.get("group", 1),
        "offset_group": values.get("offset_group", 1),
    }


def _static_shapes(model: ModelProto) -> dict[str, list[int | None]]:
    """Shapes known before run time (initializers, inputs, value info after shape inference), by tensor name."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int | None]] = {}
    for graph in graphs(inferred):
        for value in (*graph.input, *graph.value_info, *graph.output):
            if value.type.tensor_type.HasField("shape"):
                dims = value.type.tensor_type.shape.dim
                shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        shapes.update({t.name: list(t.dims) for t in graph.initializer})
    return shapes


def _decompose(node: onnx.NodeProto, weight_shape: list[int], mode: str, emit: _Emitter) -> None:
    """Emit the standard-op equivalent of one ``DeformConv`` node (its output keeps its name)."""
    x, weight, offset, bias, mask = (list(node.input) + ["", ""])[:5]
    attrs = _attributes(node, weight_shape)
    out_channels, group_channels = weight_shape[:2]
    channels, groups, offset_groups = group_channels * attrs["group"], attrs["group"], attrs["offset_group"]
    kh, kw = attrs["kernel"]
    taps = kh * kw
    if out_channels % groups or channels % offset_groups:
        raise ModelError(f"DeformConv node {node.name!r}: {channels} input / {out_channels} output channels do "
                         f"not divide into group={groups}, offset_group={offset_groups}")

    # Run-time sizes: [oH, oW] from the offset, [W, H] of the input as floats.
    out_hw = emit.op("Shape", [offset], "out_hw", start=2, end=4)
    out_h = emit.op("Shape", [offset], "out_h", start=2, end=3)
    out_w = emit.op("Shape", [offset], "out_w", start=3, end=4)
    in_w = emit.op("Shape", [x], "in_w", start=3, end=4)
    in_h = emit.op("Shape", [x], "in_h", start=2, end=3)
    in_wh = emit.op("Cast", [emit.op("Concat", [in_w, in_h], "in_wh_int", axis=0)], "in_wh", to=TensorProto.FLOAT,
                    fp32=True)

    # Base positions: output pixel * stride - pad + tap * dilation, (taps, 1, oH, 1) and (taps, 1, 1, oW).
    zero, one = emit.const("zero", 0, np.int64), emit.const("one", 1, np.int64)
    axis0 = emit.const("axis0", [0], np.int64)
    bases = []
    tap_rows, tap_cols = np.repeat(np.arange(kh), kw), np.tile(np.arange(kw), kh)
    for index, (axis, size, tap_index, view) in enumerate((("y", out_h, tap_rows, [-1, 1]),
                                                           ("x", out_w, tap_cols, [1, -1]))):
        stride, pad, dilation = attrs["strides"][index], attrs["pads"][index], attrs["dilations"][index]
        steps = emit.op("Range", [zero, emit.op("Squeeze", [size, axis0], f"{axis}_count"), one], f"{axis}_steps")
        pixels = emit.op("Cast", [steps], f"{axis}_pixels", to=TensorProto.FLOAT, fp32=True)
        view_shape = emit.const(f"{axis}_view_shape", view, np.int64)
        pixels = emit.op("Reshape", [pixels, view_shape], f"{axis}_view", fp32=True)
        pixels = emit.op("Mul", [pixels, emit.const(f"{axis}_stride", stride, np.float32)], f"{axis}_strided",
                         fp32=True)
        tap_shifts = (tap_index * dilation - pad).reshape(taps, 1, 1, 1)
        bases.append(emit.op("Add", [pixels, emit.const(f"{axis}_taps", tap_shifts, np.float32)], f"{axis}_base",
                             fp32=True))

    # Positions (N*offset_group, taps, 2, oH, oW) as (x, y), to the grid (N*offset_group, taps*oH, oW, 2).
    offsets = emit.op("Reshape", [offset, emit.op("Concat", [emit.const("offset_dims", [-1, taps, 2], np.int64),
                                                             out_hw], "offset_shape", axis=0)], "offsets")
    dy, dx = emit.op("Split", [offsets, emit.const("split", [1, 1], np.int64)], "dy_dx", outputs=2, axis=2)
    pos_y = emit.op("Add", [bases[0], dy], "pos_y", fp32=True)
    pos_x = emit.op("Add", [bases[1], dx], "pos_x", fp32=True)
    positions = emit.op("Concat", [pos_x, pos_y], "positions", axis=2, fp32=True)
    positions = emit.op("Transpose", [positions], "positions_last", perm=[0, 1, 3, 4, 2], fp32=True)
    grid_hw = emit.op("Mul", [out_hw, emit.const("grid_rows", [taps, 1], np.int64)], "grid_hw")
    grid_shape = emit.op("Concat", [emit.const("minus_one", [-1], np.int64), grid_hw,
                                    emit.const("two", [2], np.int64)], "grid_shape", axis=0)
    positions = emit.op("Reshape", [positions, grid_shape], "positions_grid", fp32=True)
    grid = emit.op("Mul", [positions, emit.const("grid_scale", 2, np.float32)], "grid_double", fp32=True)
    grid = emit.op("Add", [grid, emit.const("grid_one", 1, np.float32)], "grid_shift", fp32=True)
    grid = emit.op("Div", [grid, in_wh], "grid_size", fp32=True)
    grid = emit.op("Sub", [grid, emit.const("grid_center", 1, np.float32)], "grid", fp32=True)

    # Sample every tap at once, (N*offset_group, C/offset_group, taps*oH, oW), and apply the mask.
    grouped = emit.op("Reshape", [x, emit.const("x_grouped", [-1, channels // offset_groups, 0, 0], np.int64)],
                      "x_grouped")
    sampled = emit.op("GridSample", [grouped, grid], "grid_sample", mode=mode, padding_mode="zeros",
                      align_corners=0, fp32=True)
    sample_dims = [-1, offset_groups, channels // offset_groups, taps]
    sampled = emit.op("Reshape", [sampled, emit.op("Concat", [emit.const("sample_dims", sample_dims, np.int64),
                                                              out_hw], "sample_shape", axis=0)], "samples")
    if mask:
        mask_shape = emit.op("Concat", [emit.const("mask_dims", [-1, offset_groups, 1, taps], np.int64), out_hw],
                             "mask_shape", axis=0)
        sampled = emit.op("Mul", [sampled, emit.op("Reshape", [mask, mask_shape], "mask")], "masked")

    # Columns (N, group, C/group * taps, oH*oW) times weight (1, group, oC/group, C/group * taps).
    columns_dims = [0, groups, (channels // groups) * taps, -1]
    columns = emit.op("Reshape", [sampled, emit.const("columns_dims", columns_dims, np.int64)], "columns")
    kernel_dims = [1, groups, out_channels // groups, (channels // groups) * taps]
    kernel = emit.op("Reshape", [weight, emit.const("kernel_dims", kernel_dims, np.int64)], "kernel")
    product = emit.op("MatMul", [kernel, columns], "matmul")
    out_shape = emit.op("Concat", [emit.const("out_dims", [-1, out_channels], np.int64), out_hw], "out_shape", axis=0)
    if not bias:
        emit.op("Reshape", [product, out_shape], "output", output=node.output[0])
        return
    unbiased = emit.op("Reshape", [product, out_shape], "unbiased")
    bias = emit.op("Reshape", [bias, emit.const("bias_dims", [1, -1, 1, 1], np.int64)], "bias")
    emit.op("Add", [unbiased, bias], "output", output=node.output[0])


def decompose_deform_conv(model: ModelProto) -> DecomposedGraph:
    """A copy of ``model`` whose standard ``DeformConv`` nodes (main graph and If/Loop/Scan bodies) are
    standard ops that TensorRT parses natively; see the module docstring. ``model`` is not modified.

    Raises ``ModelError`` where a weight's shape is not known before run time or the node is malformed.
    """
    model = copy.deepcopy(model)
    if not any(is_deform_conv(node) for graph in graphs(model) for node in graph.node):
        return DecomposedGraph(model, 0, ())
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    mode = "linear" if opset >= _LINEAR_MODE_OPSET else "bilinear"
    shapes = _static_shapes(model)
    taken = {name for graph in graphs(model) for node in graph.node for name in (node.name, *node.output)}
    taken |= {value.name for graph in graphs(model) for value in (*graph.input, *graph.initializer)}
    count, fp32_nodes = 0, []
    for graph in graphs(model):  # a graph's subgraphs are visited after it, from its rewritten node list
        nodes, rewritten = [], False
        for node in graph.node:
            if not is_deform_conv(node):
                nodes.append(node)
                continue
            inputs = list(node.input)
            if not 3 <= len(inputs) <= 5 or not all(inputs[:3]):
                raise ModelError(f"DeformConv node {node.name!r} has inputs {inputs}; expected X, W, offset[, B[, "
                                 "mask]]")
            weight_shape = shapes.get(inputs[1])
            if weight_shape is None or len(weight_shape) != 4 or None in weight_shape:
                raise ModelError(f"DeformConv node {node.name!r}: the shape of its weight {inputs[1]!r} is not "
                                 f"known before run time ({weight_shape}); it is needed to decompose the node")
            emit = _Emitter(node.name or node.output[0], taken)
            _decompose(node, weight_shape, mode, emit)
            nodes += emit.nodes
            graph.initializer.extend(emit.initializers)
            fp32_nodes += emit.fp32_nodes
            count, rewritten = count + 1, True
        if rewritten:
            graph.ClearField("node")
            graph.node.extend(nodes)
    return DecomposedGraph(model, count, tuple(fp32_nodes))
