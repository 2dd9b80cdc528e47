"""Walking an ONNX graph: every node, subgraphs and local functions included, and the facts about it
that the runtime (``vqa-rt inspect``) and the engine build both need."""

from __future__ import annotations

from typing import Iterator

import onnx
from onnx import ModelProto


def graphs(model: ModelProto) -> Iterator[onnx.GraphProto]:
    """The main graph and every subgraph (If/Loop/Scan bodies), depth first."""
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        yield graph
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    stack.append(attribute.g)
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(attribute.graphs)


def graph_nodes(model: ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node: of the main graph, its subgraphs and the model's local functions."""
    for graph in graphs(model):
        yield from graph.node
    for function in model.functions:
        yield from function.node


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """The nodes of ``graph`` (not its subgraphs) that read each tensor, by tensor name."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def is_deform_conv(node: onnx.NodeProto) -> bool:
    """Whether ``node`` is the standard ONNX ``DeformConv``."""
    return node.op_type == "DeformConv" and node.domain in ("", "ai.onnx")


def count_deform_conv(model: ModelProto) -> int:
    """Standard ``DeformConv`` nodes in the model (subgraphs and functions included)."""
    return sum(is_deform_conv(node) for node in graph_nodes(model))
