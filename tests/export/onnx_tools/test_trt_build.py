"""The engine build's graph steps and pure parts, on the CPU: DeformConv -> plugin rewrite,
FP16 conversion (checked on ONNX Runtime CPU), Q/DQ checks, profile derivation, parser
error and layer report formatting, and the clear failure where TensorRT is absent."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vqa_rt.errors import BackendUnavailableError, EngineBuildError, ModelError
from vqa_rt.export.onnx_tools.trt_build import (
    BuildOptions,
    BuildReport,
    ParserErrorInfo,
    ShapeRange,
    build_engine,
    check_quantized,
    convert_to_fp16,
    count_deform_conv,
    derive_profile,
    format_parser_error,
    format_parser_errors,
    graph_input_shapes,
    prepare_graph,
    rewrite_deform_conv,
    summarize_layers,
)
from vqa_rt.runtime.engines.metadata import onnx_metadata

FP16_TOLERANCE = 5e-3  # max |fp16 - fp32| / max |fp32| per output on ORT CPU (seen: ~3e-4)
TENSORRT_IMPORTABLE = importlib.util.find_spec("tensorrt") is not None


def deform_model(inputs=("x", "w", "offset", "b", "mask"), **attributes) -> onnx.ModelProto:
    """One DeformConv node (3x3, 2 offset groups) whose graph inputs are the non-empty names in ``inputs``."""
    shapes = {"x": (1, 4, 6, 6), "w": (2, 4, 3, 3), "offset": (1, 36, 6, 6), "b": (2,), "mask": (1, 18, 6, 6)}
    attributes = {"pads": [1, 1, 1, 1], "offset_group": 2, "strides": [1, 1], **attributes}
    node = helper.make_node("DeformConv", list(inputs), ["y"], name="fuse/deform", **attributes)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in inputs if n],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 2, 6, 6))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)


def attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


# ---------------------------------------------------------------- DeformConv -> VqaDeformConv2d

def test_rewrite_makes_plugin_nodes_and_keeps_inputs_and_attributes():
    model = deform_model(kernel_shape=[3, 3], dilations=[1, 1], group=1)
    rewritten, count = rewrite_deform_conv(model)
    assert count == 1
    node = rewritten.graph.node[0]
    assert (node.op_type, node.domain, node.name) == ("VqaDeformConv2d", "vqa_rt", "fuse/deform")
    assert list(node.input) == ["x", "w", "offset", "b", "mask"] and list(node.output) == ["y"]
    assert attrs(node) == {"pads": [1, 1, 1, 1], "offset_group": 2, "strides": [1, 1], "kernel_shape": [3, 3],
                           "dilations": [1, 1], "group": 1, "plugin_namespace": b"vqa_rt", "plugin_version": b"1"}
    assert ("vqa_rt", 1) in [(o.domain, o.version) for o in rewritten.opset_import]
    onnx.checker.check_model(rewritten)
    assert model.graph.node[0].op_type == "DeformConv"  # the input model is not modified


@pytest.mark.parametrize("inputs, kept", [
    (("x", "w", "offset", "", "mask"), ["x", "w", "offset", "mask"]),  # no bias: the 4-D fourth input is the mask
    (("x", "w", "offset", "b", ""), ["x", "w", "offset", "b"]),
    (("x", "w", "offset"), ["x", "w", "offset"]),
])
def test_rewrite_drops_absent_optional_inputs(inputs, kept):
    rewritten, _ = rewrite_deform_conv(deform_model(inputs))
    assert list(rewritten.graph.node[0].input) == kept


def test_rewrite_reaches_subgraphs():
    branch = helper.make_graph([deform_model().graph.node[0]], "then", [],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "else", [],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    model = deform_model()
    model.graph.node.insert(0, helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=other))
    assert count_deform_conv(model) == 2
    rewritten, count = rewrite_deform_conv(model)
    assert count == 2 and count_deform_conv(rewritten) == 0


def test_builtin_option_leaves_deform_conv_to_tensorrt():
    prepared = prepare_graph(deform_model(), "fp32", builtin_deformconv=True)
    assert prepared.rewritten == 0 and prepared.deform_conv == 1
    assert prepared.model.graph.node[0].op_type == "DeformConv"
    assert prepared.plugins() == [{"name": "ModulatedDeformConv2d", "version": "2", "namespace": ""}]
    ours = prepare_graph(deform_model(), "fp32")
    assert ours.rewritten == 1 and ours.plugins() == [{"name": "VqaDeformConv2d", "version": "1",
                                                        "namespace": "vqa_rt"}]


def test_exported_fr_model_is_rewritten_whole(fr_export):
    model = onnx.load(fr_export.path)
    original = [(list(n.input), attrs(n)) for n in model.graph.node if n.op_type == "DeformConv"]
    prepared = prepare_graph(model, "fp32")
    plugin_nodes = [n for n in prepared.model.graph.node if n.op_type == "VqaDeformConv2d"]
    assert prepared.rewritten == len(original) == len(plugin_nodes) == 3
    for (inputs, attributes), node in zip(original, plugin_nodes):
        assert list(node.input) == inputs and len(inputs) == 5  # the FR model's fusions have bias and mask
        assert {k: v for k, v in attrs(node).items() if not k.startswith("plugin_")} == attributes
    assert prepared.plugins()[0]["name"] == "VqaDeformConv2d"


# ---------------------------------------------------------------- FP16

def _run(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def test_fp16_graph_runs_on_ort_cpu_and_matches_fp32(fr_export):
    model = onnx.load(fr_export.path)
    half = convert_to_fp16(model)
    assert [i.type.tensor_type.elem_type for i in half.graph.input] == [TensorProto.FLOAT] * 4
    assert [o.type.tensor_type.elem_type for o in half.graph.output] == [TensorProto.FLOAT] * 3
    assert {t.data_type for t in half.graph.initializer if t.name.endswith("deform.weight")} == {TensorProto.FLOAT16}
    assert onnx_metadata(half) == onnx_metadata(model)
    rng = np.random.default_rng(5)
    ref = rng.standard_normal((2, 3, 96, 128)).astype(np.float32)
    feed = {"ref": ref, "dist": ref + 0.2 * rng.standard_normal(ref.shape).astype(np.float32),
            "ref_prev": np.roll(ref, 2, axis=3), "dist_prev": np.roll(ref, 3, axis=2)}
    for expected, actual in zip(_run(model, feed), _run(half, feed)):
        assert actual.dtype == np.float32
        error = np.abs(actual - expected).max() / np.abs(expected).max()
        assert error <= FP16_TOLERANCE, error


def test_fp16_precision_converts_then_rewrites(fr_export):
    prepared = prepare_graph(onnx.load(fr_export.path), "fp16")
    assert prepared.fp16_converted and prepared.rewritten == 3
    assert "converted to FP16" in prepared.describe() and "3 DeformConv -> VqaDeformConv2d" in prepared.describe()


# ---------------------------------------------------------------- INT8 / FP8 need explicit Q/DQ

def qdq_model(zero_point_type=TensorProto.INT8, zero_point=0, with_qdq=True) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(w) with a quantized weight behind a DequantizeLinear."""
    nodes, inits = [], [numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")]
    source = "x"
    if with_qdq:
        inits += [numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
                  helper.make_tensor("zp", zero_point_type, [], [zero_point])]
        nodes += [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["xq"], name="q0"),
                  helper.make_node("DequantizeLinear", ["xq", "scale", "zp"], ["xd"], name="dq0")]
        source = "xd"
    nodes.append(helper.make_node("Conv", [source, "w"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 1, 4, 4))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 2, 4, 4))], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def test_int8_and_fp8_accept_matching_qdq():
    summary = check_quantized(qdq_model(), "int8")
    assert (summary.quantize, summary.dequantize, summary.types) == (1, 1, {"INT8": 2})
    assert check_quantized(qdq_model(TensorProto.FLOAT8E4M3FN), "fp8").types == {"FLOAT8E4M3FN": 2}


@pytest.mark.parametrize("model, precision, message", [
    (qdq_model(with_qdq=False), "int8", "has none: quantize it first with 'vqa-rt quantize'"),
    (qdq_model(with_qdq=False), "fp8", "explicitly quantized graph"),
    (qdq_model(), "fp8", "needs FLOAT8E4M3FN Q/DQ nodes; the graph's are: 2 INT8"),
    (qdq_model(TensorProto.UINT8, 128), "int8", "asymmetric UINT8"),
    (qdq_model(TensorProto.INT8, 3), "int8", "symmetric quantization only .*q0, dq0"),
])
def test_quantized_precisions_refuse_graphs_without_usable_qdq(model, precision, message):
    with pytest.raises(ModelError, match=message):
        prepare_graph(model, precision)


def test_fp16_refuses_a_quantized_graph():
    with pytest.raises(ModelError, match="QuantizeLinear/DequantizeLinear.*int8 or fp8"):
        prepare_graph(qdq_model(), "fp16")


# ---------------------------------------------------------------- optimisation profile

def test_default_profile_from_the_fr_metadata(fr_export):
    model = onnx.load(fr_export.path, load_external_data=False)
    metadata = onnx_metadata(model)
    profile = derive_profile(graph_input_shapes(model), metadata["dynamic_axes"], min_size=metadata["min_size"])
    assert list(profile) == ["ref", "dist", "ref_prev", "dist_prev"]
    for shapes in profile.values():
        assert (shapes.min, shapes.opt, shapes.max) == ((1, 3, 360, 640), (1, 3, 1080, 1920), (4, 3, 2160, 3840))
    assert profile["ref"].describe() == "[1..1..4]x3x[360..1080..2160]x[640..1920..3840]"
    small = ShapeRange((64, 64), (128, 96), (256, 192), 1, 2, 2)
    assert derive_profile(graph_input_shapes(model), metadata["dynamic_axes"], small)["dist"].opt == (2, 3, 96, 128)


def test_profile_uses_graph_dimension_names_without_metadata():
    shapes = {"rgb": ["batch", 3, "height", "width"]}
    assert derive_profile(shapes, {})["rgb"].max == (4, 3, 2160, 3840)


@pytest.mark.parametrize("shapes, axes, shape_range, min_size, message", [
    ({"x": ["n", 3, "h", "w"]}, {}, ShapeRange(), 1, "dynamic axis 0 \\(n\\).*batch, height, width"),
    ({"x": [None, 3]}, {}, ShapeRange(), 1, "dynamic axis 0 \\(unnamed\\)"),
    ({"x": ["batch", 3, "height", "width"]}, {}, ShapeRange(min_size=(32, 32)), 64, "minimum height 32 is below"),
    ({"x": ["batch"]}, {}, ShapeRange(opt_batch=8), 1, "batch range must satisfy.*1, 8, 4"),
    ({"x": ["batch"]}, {}, ShapeRange(opt_size=(5000, 1080)), 1, "width range"),
])
def test_profile_errors_say_what_is_wrong(shapes, axes, shape_range, min_size, message):
    with pytest.raises(EngineBuildError, match=message):
        derive_profile(shapes, axes, shape_range, min_size)


# ---------------------------------------------------------------- parser errors and the layer report

def test_parser_errors_name_node_and_op():
    error = ParserErrorInfo("Plugin not found, are the plugin name, version, and namespace correct?",
                            "UNSUPPORTED_NODE", 41, "node_deform_conv2d", "VqaDeformConv2d")
    text = format_parser_error(error)
    assert text.startswith("node 41 'node_deform_conv2d' (VqaDeformConv2d): UNSUPPORTED_NODE: Plugin not found")
    assert "make kernels TENSORRT_ROOT" in text and "$VQA_RT_PLUGIN" in text
    builtin = format_parser_error(ParserErrorInfo("no importer", "UNSUPPORTED_NODE", 3, "d", "DeformConv"))
    assert "ModulatedDeformConv2d" in builtin
    assert format_parser_error(ParserErrorInfo("bad file")) == "bad file"
    line = format_parser_errors("fr.onnx", [error, ParserErrorInfo("second", "INVALID_NODE", 7, "n7", "Conv")])
    assert line.startswith("fr.onnx: TensorRT's ONNX parser rejected the graph (2 error(s)): node 41")
    assert "; node 7 'n7' (Conv): INVALID_NODE: second" in line and "\n" not in line


def test_layer_summary_counts_types_and_output_precisions():
    info = {"Layers": [
        {"Name": "conv1", "LayerType": "CaskConvolution",
         "Outputs": [{"Name": "a", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
        {"Name": "deform", "LayerType": "PluginV3",
         "Outputs": [{"Name": "b", "Format/Datatype": "Row major linear FP16 format"}]},
        {"Name": "head", "LayerType": "CaskGemm",
         "Outputs": [{"Name": "c", "Format/Datatype": "Row major linear FP32"}]},
        {"Name": "q", "LayerType": "Scale", "Outputs": [{"Name": "d", "Format/Datatype": "Row major Int8 format"}]},
    ], "Bindings": ["ref"]}
    assert summarize_layers(info) == {"count": 4, "types": {"CaskConvolution": 1, "PluginV3": 1, "CaskGemm": 1,
                                                            "Scale": 1},
                                      "output_precisions": {"FP16": 2, "FP32": 1, "INT8": 1}}
    assert summarize_layers({"Layers": ["conv1", "head"]}) == {"count": 2, "types": {}, "output_precisions": {}}


# ---------------------------------------------------------------- the build where TensorRT is absent

def test_build_checks_the_request_before_looking_for_tensorrt(fr_export, tmp_path):
    with pytest.raises(EngineBuildError, match="must end in .plan"):
        build_engine(fr_export.path, str(tmp_path / "fr.engine"))
    with pytest.raises(ModelError, match="fr.onnx: --precision int8 needs an explicitly quantized graph"):
        build_engine(fr_export.path, str(tmp_path / "fr.plan"), BuildOptions(precision="int8"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(TENSORRT_IMPORTABLE, reason="TensorRT is importable here")
def test_build_without_tensorrt_fails_clearly_and_writes_nothing(fr_export, tmp_path):
    cache = tmp_path / "timing.cache"
    with pytest.raises(BackendUnavailableError, match="TensorRT is not available .*pip install 'vqa-rt\\[gpu\\]'"):
        build_engine(fr_export.path, str(tmp_path / "fr.plan"), BuildOptions(precision="fp16",
                                                                             timing_cache=str(cache)))
    assert list(tmp_path.iterdir()) == []


def test_build_report_summary_lines(tmp_path):
    plan = tmp_path / "fr.plan"
    plan.write_bytes(b"\0" * (3 << 20))  # stands in for the plan's size only
    profile = {"min": [1, 3, 360, 640], "opt": [1, 3, 1080, 1920], "max": [4, 3, 2160, 3840]}
    sidecar = {"precision": "fp16", "tensorrt": {"version": "10.13.3.9"},
               "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
               "profile": {"ref": profile, "dist": profile, "rgb": dict(profile, max=[2, 3, 2160, 3840])},
               "plugins": [{"name": "VqaDeformConv2d", "version": "1", "namespace": "vqa_rt"}]}
    layers = {"count": 5, "types": {}, "output_precisions": {"FP16": 4, "FP32": 1}}
    report = BuildReport(str(plan), sidecar, layers, 12.34, "converted to FP16", "cache.bin", ["a note"])
    lines = report.summary()
    assert lines[0] == (f"built {plan} in 12.3 s: TensorRT 10.13.3.9, fp16, NVIDIA H100 80GB HBM3 "
                        "(compute capability 9.0), 3 MiB")
    assert lines[2] == ("profile: ref, dist [1..1..4]x3x[360..1080..2160]x[640..1920..3840]; "
                        "rgb [1..1..2]x3x[360..1080..2160]x[640..1920..3840]")
    assert lines[3:7] == ["layers: 5, 4 with FP16 outputs, 1 with FP32 outputs", "needs plugin(s): VqaDeformConv2d v1",
                          "timing cache: cache.bin", "note: a note"]
    assert lines[-1].endswith("fr.plan.json, " + str(plan) + ".report.json")
    assert report.to_dict()["seconds"] == 12.34 and report.to_dict()["precision"] == "fp16"
