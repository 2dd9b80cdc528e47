"""DeformConv -> GridSample + MatMul decomposition, checked against ONNX Runtime's own ``DeformConv`` kernel
(CPU) on seeded random inputs: single nodes (the FR model's layers, corner cases), dynamic sizes, subgraphs,
the whole exported FR model, and its FP16 conversion with the FP32 block list."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vqa_rt.errors import ModelError
from vqa_rt.export.onnx_tools.deform_decompose import decompose_deform_conv
from vqa_rt.export.onnx_tools.trt_graph import convert_to_fp16
from vqa_rt.runtime.engines.onnx_graph import count_deform_conv

# max |decomposed - DeformConv| / max |DeformConv| in FP32. Both round pixel positions to fp32, so the
# difference grows with the map size (seen: ~1e-6 on 34x60 maps, ~4e-6 on 45x80, ~8.5e-6 on 135x240).
TOLERANCE = 1e-5
FP16_TOLERANCE = 5e-3  # as in test_trt_graph.py: max |fp16 - fp32| / max |fp32| per output on ORT CPU
FR_INPUTS = ("ref", "dist", "ref_prev", "dist_prev")


def deform_model(batch=1, channels=4, height=6, width=7, out_channels=2, kernel=(3, 3), bias=True, mask=True,
                 opset=22, weight_input=False, **attributes) -> tuple[onnx.ModelProto, dict]:
    """One DeformConv node with dynamic batch/height/width inputs, and a seeded feed for it. ``attributes`` are
    the node's (absent ones take ONNX's defaults); offsets are ~3 px, so many taps fall outside the image."""
    rng = np.random.default_rng(0)
    (kh, kw), group = kernel, attributes.get("group", 1)
    offset_group = attributes.get("offset_group", 1)
    sh, sw = attributes.get("strides", (1, 1))
    dh, dw = attributes.get("dilations", (1, 1))
    top, left, bottom, right = attributes.get("pads", (0, 0, 0, 0))
    out_h, out_w = (height + top + bottom - dh * (kh - 1) - 1) // sh + 1, (width + left + right - dw * (kw - 1) - 1) // sw + 1
    taps = offset_group * kh * kw
    weight = rng.standard_normal((out_channels, channels // group, kh, kw)).astype(np.float32)
    bias_values = rng.standard_normal(out_channels).astype(np.float32)
    feed = {"x": rng.standard_normal((batch, channels, height, width)).astype(np.float32),
            "offset": (3 * rng.standard_normal((batch, 2 * taps, out_h, out_w))).astype(np.float32)}
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, "h", "w"]),
              helper.make_tensor_value_info("offset", TensorProto.FLOAT, ["n", 2 * taps, "oh", "ow"])]
    initializers = []
    if weight_input:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, weight.shape))
        feed["w"] = weight
    else:
        initializers.append(numpy_helper.from_array(weight, "w"))
    if bias:
        initializers.append(numpy_helper.from_array(bias_values, "b"))
    if mask:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["n", taps, "oh", "ow"]))
        feed["mask"] = rng.uniform(0, 1, (batch, taps, out_h, out_w)).astype(np.float32)
    names = ["x", "w", "offset", "b" if bias else "", "mask" if mask else ""]
    while not names[-1]:
        names.pop()
    node = helper.make_node("DeformConv", names, ["y"], name="fuse/deform", **attributes)
    graph = helper.make_graph([node], "g", inputs, [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", out_channels, "oh", "ow"])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10), feed


def run(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


FR = dict(out_channels=64, kernel=(3, 3), pads=[1, 1, 1, 1], offset_group=2)  # DeformableFusion, FRConfig defaults

CASES = {
    # The default FR model fuses trunk stages 2-4 (128, 256, 512 wide, strides 8, 16, 32): the concatenated
    # ref/dist maps have twice those channels; 640x360 and 1920x1080 frames give these map sizes.
    "fr-stage2-360p": dict(channels=256, height=45, width=80, **FR),
    "fr-stage3-360p": dict(channels=512, height=23, width=40, **FR),
    "fr-stage4-360p": dict(channels=1024, height=12, width=20, **FR),
    "fr-stage2-1080p": dict(channels=256, height=135, width=240, **FR),
    "fr-stage3-1080p": dict(channels=512, height=68, width=120, **FR),
    "fr-stage4-1080p": dict(channels=1024, height=34, width=60, **FR),
    "group-2": dict(channels=8, out_channels=6, group=2, pads=[1, 1, 1, 1]),
    "offset_group-4": dict(channels=8, offset_group=4, pads=[1, 1, 1, 1]),
    "group-2-offset_group-4": dict(channels=8, out_channels=6, group=2, offset_group=4, pads=[1, 1, 1, 1]),
    "group-4-offset_group-2": dict(channels=8, out_channels=4, group=4, offset_group=2, pads=[1, 1, 1, 1]),
    "stride-2": dict(height=9, width=8, strides=[2, 2], pads=[1, 1, 1, 1]),
    "dilation-2": dict(height=9, width=10, dilations=[2, 2], pads=[2, 2, 2, 2]),
    "padding-0": dict(pads=[0, 0, 0, 0]),
    "asymmetric-pads": dict(pads=[0, 2, 1, 0]),
    "kernel-3x5": dict(kernel=(3, 5), pads=[1, 2, 1, 2]),
    "kernel-1x1": dict(kernel=(1, 1), offset_group=2),
    "no-bias": dict(bias=False, pads=[1, 1, 1, 1]),
    "no-mask": dict(mask=False, pads=[1, 1, 1, 1]),
    "no-bias-no-mask": dict(bias=False, mask=False, pads=[1, 1, 1, 1]),
    "batch-3": dict(batch=3, offset_group=2, pads=[1, 1, 1, 1]),
    "width-1": dict(width=1, pads=[1, 1, 1, 1]),
    "height-1": dict(height=1, pads=[1, 1, 1, 1]),
    "opset-19": dict(opset=19, offset_group=2, pads=[1, 1, 1, 1]),
    "no-attributes": dict(),
    "weight-input": dict(weight_input=True, pads=[1, 1, 1, 1]),
    "everything": dict(batch=2, channels=8, out_channels=4, kernel=(3, 5), group=2, offset_group=2, strides=[2, 1],
                       dilations=[1, 2], pads=[2, 0, 1, 3], kernel_shape=[3, 5], mask=False),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decomposition_matches_deform_conv(case):
    model, feed = deform_model(**case)
    decomposed = decompose_deform_conv(model)
    assert decomposed.count == 1 and count_deform_conv(decomposed.model) == 0
    onnx.checker.check_model(decomposed.model, full_check=True)
    (want,), (got,) = run(model, feed), run(decomposed.model, feed)
    assert got.shape == want.shape
    assert relative_error(got, want) <= TOLERANCE


@pytest.mark.parametrize("opset, mode", [(19, "bilinear"), (20, "linear"), (22, "linear")])
def test_grid_sample_mode_follows_the_opset(opset, mode):
    decomposed = decompose_deform_conv(deform_model(opset=opset)[0])
    (sample,) = [node for node in decomposed.model.graph.node if node.op_type == "GridSample"]
    assert helper.get_attribute_value(next(a for a in sample.attribute if a.name == "mode")) == mode.encode()
    assert sample.name in decomposed.fp32_nodes


def test_one_file_serves_every_size(tmp_path):
    model, _ = deform_model(channels=8, out_channels=4, offset_group=2, strides=[2, 2], pads=[1, 0, 2, 1])
    path = str(tmp_path / "decomposed.onnx")
    onnx.save(decompose_deform_conv(model).model, path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch, height, width in ((1, 7, 11), (3, 16, 9)):
        sized, feed = deform_model(batch, 8, height, width, 4, offset_group=2, strides=[2, 2], pads=[1, 0, 2, 1])
        (want,), (got,) = run(sized, feed), session.run(None, feed)
        assert got.shape == want.shape and relative_error(got, want) <= TOLERANCE


def test_nodes_in_subgraphs_are_decomposed():
    model, feed = deform_model(offset_group=2, pads=[1, 1, 1, 1])
    branch = helper.make_graph(list(model.graph.node), "then", [], list(model.graph.output))
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["y_else"])], "else", [],
                              [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, [None] * 4)])
    model.graph.ClearField("node")
    model.graph.node.append(helper.make_node("If", ["cond"], ["z"], then_branch=branch, else_branch=other))
    model.graph.output[0].name = "z"
    model.graph.input.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
    feed["cond"] = np.array(True)
    decomposed = decompose_deform_conv(model)
    assert decomposed.count == 1 and count_deform_conv(decomposed.model) == 0
    onnx.checker.check_model(decomposed.model)
    assert relative_error(run(decomposed.model, feed)[0], run(model, feed)[0]) <= TOLERANCE


def test_names_stay_unique_when_prefixes_repeat():
    """An unnamed node is prefixed by its output's name, here the other node's name."""
    model, feed = deform_model(pads=[1, 1, 1, 1])
    twin = helper.make_node("DeformConv", ["x", "w", "offset", "b", "mask"], ["fuse/deform"], pads=[1, 1, 1, 1])
    model.graph.node.append(twin)
    model.graph.output.append(helper.make_tensor_value_info("fuse/deform", TensorProto.FLOAT, [None] * 4))
    decomposed = decompose_deform_conv(model)
    assert decomposed.count == 2
    names = [node.name for node in decomposed.model.graph.node]
    assert len(names) == len(set(names)) and len(set(decomposed.fp32_nodes)) == len(decomposed.fp32_nodes)
    onnx.checker.check_model(decomposed.model)
    for got, want in zip(run(decomposed.model, feed), run(model, feed), strict=True):
        assert relative_error(got, want) <= TOLERANCE


def test_input_model_is_unchanged_and_models_without_deform_conv_come_back_equal():
    model, _ = deform_model(pads=[1, 1, 1, 1])
    before = model.SerializeToString()
    decompose_deform_conv(model)
    assert model.SerializeToString() == before
    plain = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]))
    result = decompose_deform_conv(plain)
    assert (result.model, result.count, result.fp32_nodes) == (plain, 0, ())
    assert result.model is not plain


def test_weight_of_unknown_shape_is_a_model_error():
    model, _ = deform_model(weight_input=True)
    (weight,) = [value for value in model.graph.input if value.name == "w"]
    weight.CopyFrom(helper.make_tensor_value_info("w", TensorProto.FLOAT, ["o", "i", 3, 3]))
    with pytest.raises(ModelError, match="shape of its weight 'w' is not known"):
        decompose_deform_conv(model)


# ---------------------------------------------------------------- the exported FR model

@pytest.fixture(scope="module")
def fr_models(fr_export):
    """The exported FR model and its decomposition, both with the DeformConv outputs as extra graph outputs
    (the model's own outputs are pooled scores)."""
    model = onnx.load(fr_export.path)
    model.graph.output.extend(helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, [None] * 4)
                              for node in model.graph.node if node.op_type == "DeformConv")
    return model, decompose_deform_conv(model)


def fr_feed(batch: int, height: int, width: int) -> dict:
    rng = np.random.default_rng(batch * height * width)
    return {name: rng.uniform(0, 1, (batch, 3, height, width)).astype(np.float32) for name in FR_INPUTS}


def test_fr_model_decomposed_matches_the_original(fr_models):
    model, decomposed = fr_models
    assert decomposed.count == 3 and count_deform_conv(decomposed.model) == 0
    onnx.checker.check_model(decomposed.model)
    original = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rewritten = ort.InferenceSession(decomposed.model.SerializeToString(), providers=["CPUExecutionProvider"])
    for size in ((1, 224, 320), (2, 200, 296)):
        feed = fr_feed(*size)
        for got, want in zip(rewritten.run(None, feed), original.run(None, feed), strict=True):
            assert relative_error(got, want) <= TOLERANCE


def test_fr_model_decomposed_runs_in_fp16_with_the_coordinates_kept_in_fp32(fr_models):
    """Scores and the three fusion outputs of the FP16 graph (coordinates kept FP32, as the engine build converts
    it) against the FP32 decomposition."""
    _, decomposed = fr_models
    fp16 = convert_to_fp16(decomposed.model, list(decomposed.fp32_nodes))
    feed = fr_feed(1, 360, 640)
    session = ort.InferenceSession(decomposed.model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = [output.name for output in decomposed.model.graph.output]
    assert len(outputs) == 6
    for name, got, want in zip(outputs, run(fp16, feed), session.run(outputs, feed), strict=True):
        assert relative_error(got, want) <= FP16_TOLERANCE, name
