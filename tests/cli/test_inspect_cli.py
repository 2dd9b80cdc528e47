"""``vqa-rt inspect`` as a user runs it: text, ``--json``, and one error line with exit status 2 for bad input."""

from __future__ import annotations

import json
import re

import onnx
import pytest
from onnx import TensorProto, helper

from vqa_rt.runtime.tools.inspect import describe_engine


def test_json_is_the_description(cli, fr_export):
    result = cli("inspect", fr_export.path, "--json")
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert described == describe_engine(fr_export.path)
    graph = onnx.load(fr_export.path, load_external_data=False).graph
    assert [t["name"] for t in described["inputs"]] == [v.name for v in graph.input]


def test_text(cli, fr_export):
    result = cli("inspect", fr_export.path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith(f"{fr_export.path}: ONNX model, fr model:") and lines[0].endswith("UNTRAINED weights")
    assert "  dist_prev  FLOAT  [batch, 3, height, width]" in lines and "  score      FLOAT  [batch]" in lines
    assert any(line.startswith("pre-processing: NCHW RGB planes from YUV by the bt709 matrix, limited range")
               and "mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]" in line for line in lines)
    assert any(line.startswith("plugin: 3 DeformConv node(s) become VqaDeformConv2d v1") for line in lines)


def _foreign_onnx(path) -> None:
    """A valid ONNX model that vqa-rt did not export (no vqa_rt.* metadata)."""
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(path))


@pytest.mark.parametrize("case, message", [
    ("missing.onnx", "missing.onnx: no such model file"),
    ("foreign.onnx", r"not a vqa-rt model \(no vqa_rt.kind metadata\)"),
    ("corrupt.onnx", "not a valid ONNX model"),
    ("lonely.plan", "its sidecar .*lonely.plan.json is missing"),
])
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, case, message):
    path = tmp_path / case
    if case == "foreign.onnx":
        _foreign_onnx(path)
    elif case == "corrupt.onnx":
        path.write_bytes(b"\x08\x07garbage, not a protobuf \xff\xff")
    elif case == "lonely.plan":
        path.write_bytes(b"placeholder bytes, not a TensorRT engine")
    result = cli("inspect", path, "--json")
    assert result.returncode == 2 and result.stdout == b""
    [line] = result.stderr.decode().splitlines()
    assert line.startswith("vqa-rt: error: ")
    assert re.search(message, line), line
