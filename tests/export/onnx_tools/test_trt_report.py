"""What a build says: parser errors as one line, the layer summary (inspector JSON and the builder's layer log),
and the summary printed after a build."""

from __future__ import annotations

from vqa_rt.export.onnx_tools.trt_report import (
    BuildReport,
    ParserErrorInfo,
    format_parser_error,
    format_parser_errors,
    io_from_layer_log,
    parse_layer_log,
    summarize_layers,
)


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


LAYER_LOG = """Layers:
Name: __mye1295_0_myl0_0, LayerType: shape_call, Inputs: [], Constants: [], Outputs: [], TacticName: , StreamId: 0, Metadata:
Name: node_Conv_17_myl0_2, LayerType: correlation, Inputs: [ { Name: relu.1_65_myl0, Dimensions: [-1,3,-1,-1], Datatype: Float, Format: (NHWC) Channel major format }], Constants: [ { Name: c, Dimensions: [16,3,3,3], Datatype: Float, Format: (NHWC) Channel major format }], Outputs: [ { Name: relu_1.1_66_myl0, Dimensions: [-1,16,-1,-1], Strides: [-1,1,-1,16], StrideOrder: [3,0,2,1], Datatype: Half, Format: (NHWC) Channel major format }], TacticName: __myelin_CASK_STUB, StreamId: 0, Metadata: [ONNX Layer: node_Conv_17][ONNX Layer: node_relu]
Name: __myl_Exp_myl0_15, LayerType: kgen, Inputs: [ { Name: x, Dimensions: [-1,1,-1,-1], Datatype: Half, Format: (NHWC) Channel major format }], Constants: [], Outputs: [ { Name: qs, Dimensions: [-1,1,-1,-1], Datatype: Float, Format: (Linear) Row major linear format }], TacticName: __myl_Exp_0x07, StreamId: 0, Metadata: [ONNX Layer: n9]

I/O Tensors:
 Name: rgb, IOMode: Input, DataType: Float, Dimensions: [-1,3,-1,-1], Location: Device, IsShapeInferenceIO: false, ProfileInfo: [ { MinShape: [1,3,256,256], OptShape: [1,3,512,512], MaxShape: [4,3,1024,1024], Format: Row major linear FP32 format (kLINEAR) }]
 Name: qs, IOMode: Output, DataType: Half, Dimensions: [-1,1,-1,-1], Location: Device, IsShapeInferenceIO: false, ProfileInfo: [ { Format: Row major linear FP16 format (kLINEAR) }]

Engine Metadata:
 Multi-Device: Disabled"""


def test_the_builders_layer_log_gives_layers_and_io():
    """TensorRT for RTX has no engine inspector without a GPU; its detailed layer log (this is the shape of the
    one it printed for the QP-map model) gives the same summary and the engine's I/O tensors."""
    info = parse_layer_log(LAYER_LOG)
    assert [layer["LayerType"] for layer in info["Layers"]] == ["shape_call", "correlation", "kgen"]
    assert info["Layers"][1]["Metadata"] == "[ONNX Layer: node_Conv_17][ONNX Layer: node_relu]"
    assert summarize_layers(info) == {"count": 3, "types": {"shape_call": 1, "correlation": 1, "kgen": 1},
                                      "output_precisions": {"FP16": 1, "FP32": 1}}
    assert io_from_layer_log(info) == {"inputs": [{"name": "rgb", "dtype": "FLOAT", "shape": [-1, 3, -1, -1]}],
                                       "outputs": [{"name": "qs", "dtype": "HALF", "shape": [-1, 1, -1, -1]}]}
    assert parse_layer_log("Layers:\nsomething else") == {"Layers": [], "Bindings": []}


def sidecar_for(gpu, targets, built_without_gpu):
    profile = {"min": [1, 3, 360, 640], "opt": [1, 3, 1080, 1920], "max": [4, 3, 2160, 3840]}
    return {"precision": "fp16", "tensorrt": {"flavour": "rtx", "name": "TensorRT for RTX", "version": "1.7.1.116"},
            "targets": targets, "built_without_gpu": built_without_gpu, "gpu": gpu,
            "profile": {"ref": profile, "dist": profile, "rgb": dict(profile, max=[2, 3, 2160, 3840])},
            "plugins": [{"name": "VqaDeformConv2d", "version": "1", "namespace": "vqa_rt"}],
            "layers": {"count": 5, "types": {}, "output_precisions": {"FP16": 4, "FP32": 1}}}


def test_build_report_summary_lines(tmp_path):
    plan = tmp_path / "fr.plan"
    plan.write_bytes(b"\0" * (3 << 20))  # stands in for the plan's size only
    report = BuildReport(str(plan), sidecar_for(None, ["sm86", "sm89"], True), 12.34, "converted to FP16",
                         {"Layers": []}, "cache.bin", ["a note"])
    lines = report.summary()
    assert lines[0] == (f"built {plan} in 12.3 s: TensorRT for RTX 1.7.1.116, fp16, for sm86, sm89, ahead of time "
                        "(no GPU used), 3.0 MiB")
    assert lines[2] == ("profile: ref, dist [1..1..4]x3x[360..1080..2160]x[640..1920..3840]; "
                        "rgb [1..1..2]x3x[360..1080..2160]x[640..1920..3840]")
    assert lines[3:7] == ["layers: 5, 4 with FP16 outputs, 1 with FP32 outputs", "needs plugin(s): VqaDeformConv2d v1",
                          "timing cache: cache.bin", "note: a note"]
    assert lines[-1].endswith("fr.plan.json, " + str(plan) + ".report.json")
    written = report.to_dict()
    assert written["seconds"] == 12.34 and written["precision"] == "fp16"
    assert written["layers"] == {"count": 5, "types": {}, "output_precisions": {"FP16": 4, "FP32": 1},
                                 "engine_information": {"Layers": []}}
    native = BuildReport(str(plan), sidecar_for({"name": "NVIDIA L4", "compute_capability": "8.9"}, ["sm89"], False),
                         1.0, "unchanged", {})
    assert native.summary()[0].endswith("fp16, for NVIDIA L4 (sm89), 3.0 MiB")
