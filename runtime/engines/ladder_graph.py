"""The FR model's graph rewritten to score one reference frame against N distorted renditions in one call
(a bitrate ladder), computing the reference's share once.

The exported FR graph stacks the reference and distorted frames on the batch axis for its feature trunk and
splits the trunk's outputs at the reference's batch size. Given a reference batch of 1 and a distorted batch
of N, the trunk therefore runs on N + 1 frames instead of 2N, and everything else computed from the reference
alone (its features, its frame difference) keeps a batch of 1. Where such a tensor meets one computed from the
distorted frames in a ``Concat`` on the channel axis (the fusion's inputs, the temporal branch's frame
differences), a convolution reading that concatenation (the offset predictors, the temporal branch's first
layer) becomes one convolution per part, summed: the reference's part runs once on its batch of 1 and the sum
broadcasts it. Other readers of the concatenation (the deformable convolutions) get the reference's part
broadcast to the distorted batch with an ``Expand``; elementwise operators broadcast by themselves. The outputs
are, row by row, what the one-graph model gives for each (reference, rendition) pair, up to float32 summation
order; ``tests/runtime/engines/test_ladder_graph.py`` checks that on ONNX Runtime (1e-5).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from vqa_rt.errors import ModelError
from vqa_rt.runtime.engines.onnx_graph import consumers

REFERENCE_INPUTS = ("ref", "ref_prev")
DISTORTED_INPUTS = ("dist", "dist_prev")
_PREFIX = "ladder_"
# what a tensor holds, by batch: the reference's rows (1), the renditions' rows (N), both stacked (N + 1)
REFERENCE, DISTORTED, STACKED = "reference", "distorted", "stacked"


def _axis(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "axis"), None)


def _classes(graph: onnx.GraphProto) -> dict[str, str]:
    """Each batch-carrying tensor's class (the stacked trunk's rows are split at ``Shape(ref)``, the reference's
    batch size)."""
    classes = {**dict.fromkeys(REFERENCE_INPUTS, REFERENCE), **dict.fromkeys(DISTORTED_INPUTS, DISTORTED)}
    reference_batch: set[str] = set()
    for node in graph.node:
        if node.op_type == "Shape":
            if classes.get(node.input[0]) == REFERENCE:
                reference_batch.update(node.output)
            continue
        found = {classes[name] for name in node.input if name in classes}
        if not found:
            continue
        if node.op_type == "Concat" and _axis(node) == 0 and found == {REFERENCE, DISTORTED}:
            kind = STACKED
        elif node.op_type == "Slice" and classes.get(node.input[0]) == STACKED:
            starts, ends = node.input[1:3]
            if ends in reference_batch:
                kind = REFERENCE
            elif starts in reference_batch:
                kind = DISTORTED
            else:
                raise ModelError(f"{node.name}: a Slice of the stacked trunk not at the reference's batch size")
        elif STACKED in found:
            kind = STACKED
        else:
            kind = DISTORTED if DISTORTED in found else REFERENCE
        classes.update(dict.fromkeys(node.output, kind))
    return classes


def ladder_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the FR model ``model`` that takes ``ref``/``ref_prev`` of batch 1 and ``dist``/``dist_prev`` of
    batch N and returns N rows of outputs."""
    names = [value.name for value in model.graph.input]
    if sorted(names) != sorted(REFERENCE_INPUTS + DISTORTED_INPUTS):
        raise ModelError(f"not an FR graph (inputs {names}, expected ref, dist, ref_prev, dist_prev)")
    ladder = onnx.ModelProto()
    ladder.CopyFrom(model)
    graph = ladder.graph
    classes = _classes(graph)
    channels = _channels(model)
    constants = {tensor.name: tensor for tensor in graph.initializer}
    readers = consumers(graph)

    def mixed(node: onnx.NodeProto) -> bool:
        """A channel Concat of a reference and a distorted tensor."""
        return (node.op_type == "Concat" and _axis(node) in (1, -3)
                and {REFERENCE, DISTORTED} <= {classes.get(name) for name in node.input})

    # each mixed Concat's inputs, as they are before the Expand nodes go in
    concats = {node.output[0]: list(node.input) for node in graph.node if mixed(node)}

    def split(conv: onnx.NodeProto) -> bool:
        """Whether ``conv`` reads a mixed Concat and can run as one convolution per part of it."""
        return (conv.op_type == "Conv" and conv.input[0] in concats and conv.input[1] in constants
                and all(a.i == 1 for a in conv.attribute if a.name == "group")
                and all(channels.get(name) for name in concats[conv.input[0]]))

    nodes: list[onnx.NodeProto] = []
    batch = None  # the distorted batch as a shape to expand to: [N, 1, 1, 1]
    for node in graph.node:
        if split(node):
            nodes += _split_conv(node, concats[node.input[0]], constants, channels, graph)
            continue
        if node.output[0] in concats:
            if all(split(reader) for reader in readers[node.output[0]]):
                continue  # only split convolutions read it
            if batch is None:
                batch = _batch_shape(graph, nodes, next(i for i in node.input if classes.get(i) == DISTORTED))
            for position, name in enumerate(node.input):
                if classes.get(name) == REFERENCE:
                    expanded = f"{_PREFIX}{name}_expanded_{node.name}"
                    nodes.append(helper.make_node("Expand", [name, batch], [expanded], name=expanded))
                    node.input[position] = expanded
        nodes.append(node)
    if not concats:
        raise ModelError("the FR graph has no channel Concat of reference and distorted tensors to broadcast")
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    used = {name for node in nodes for name in node.input}
    for tensor in [tensor for tensor in graph.initializer if tensor.name not in used]:  # the split weights
        graph.initializer.remove(tensor)
    for value in (*graph.input, *graph.output):  # the renditions' batch is not the reference's
        if value.name not in REFERENCE_INPUTS:
            value.type.tensor_type.shape.dim[0].dim_param = "renditions"
    return ladder


def _channels(model: onnx.ModelProto) -> dict[str, int]:
    """The channel count (axis 1) of every tensor whose shape inference knows it."""
    inferred = onnx.shape_inference.infer_shapes(model)
    values = (*inferred.graph.value_info, *inferred.graph.input)
    return {value.name: dims[1].dim_value for value in values
            if len(dims := value.type.tensor_type.shape.dim) > 1 and dims[1].HasField("dim_value")}


def _split_conv(conv: onnx.NodeProto, parts: list[str], constants: dict[str, onnx.TensorProto],
                channels: dict[str, int], graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """``conv`` over the concatenation of ``parts`` as the sum of one convolution per part, each with its input
    channels' slice of the weights (the bias added once): the reference's part runs on its batch of 1 and
    broadcasts."""
    weight = numpy_helper.to_array(constants[conv.input[1]])
    attributes = [attribute for attribute in conv.attribute]
    nodes, partial, start = [], [], 0
    for position, name in enumerate(parts):
        part = f"{_PREFIX}{conv.name}_part{position}"
        stop = start + channels[name]
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight[:, start:stop]), f"{part}_w"))
        bias = conv.input[2:3] if position == len(parts) - 1 else []
        node = helper.make_node("Conv", [name, f"{part}_w", *bias], [part], name=part)
        node.attribute.extend(attributes)
        nodes.append(node)
        partial.append(part)
        start = stop
    if start != weight.shape[1]:
        raise ModelError(f"{conv.name}: its {weight.shape[1]} input channels do not match its Concat's {start}")
    total = partial[0]
    for position, part in enumerate(partial[1:], 1):
        name = f"{_PREFIX}{conv.name}_sum{position}"
        output = conv.output[0] if position == len(partial) - 1 else name
        nodes.append(helper.make_node("Add", [total, part], [output], name=name))
        total = output
    return nodes


def _batch_shape(graph: onnx.GraphProto, nodes: list[onnx.NodeProto], distorted: str) -> str:
    """Append the nodes computing ``[N, 1, 1, 1]`` (N: the batch of the 4-D tensor ``distorted``); its name."""
    ones = numpy_helper.from_array(np.ones(3, np.int64), f"{_PREFIX}ones")
    graph.initializer.append(ones)
    nodes.append(helper.make_node("Shape", [distorted], [f"{_PREFIX}batch"], name=f"{_PREFIX}batch", start=0, end=1))
    nodes.append(helper.make_node("Concat", [f"{_PREFIX}batch", ones.name], [f"{_PREFIX}batch_shape"],
                                  name=f"{_PREFIX}batch_shape", axis=0))
    return f"{_PREFIX}batch_shape"
