"""Quantizing the NR model: Q/DQ and weight-only graphs, the fidelity report, bad inputs."""

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from vqa_rt.errors import InputError, ModelError
from vqa_rt.export.onnx_tools.fidelity import compare_models
from vqa_rt.export.onnx_tools.quantize import QDQ_OPSET, quantize_model, quantized_nodes
from vqa_rt.runtime.engines.backends.unsigned_qdq import unsigned_activations
from vqa_rt.runtime.frames.options import ScoreOptions
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.pipeline.score import score

W, H = 64, 48
ALL_FRAMES = ScoreOptions(frame_stride=1)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """20 frames of 64x48 raw YUV: two clips, one JPEG-degraded, one blurred."""
    folder = tmp_path_factory.mktemp("calib")
    path = folder / "calib.yuv"
    with open(path, "wb") as out:
        for seed, distortion in ((1, "jpeg"), (2, "blur")):
            make_test_clip(str(folder / "r.yuv"), str(folder / "d.yuv"), W, H, 10, seed=seed, distortion=distortion)
            out.write((folder / "d.yuv").read_bytes())
    return VideoInput(str(path), W, H)


@pytest.fixture(scope="module")
def quantized(nr_export, calibration, tmp_path_factory):
    """Every mode's output path and fidelity report."""
    folder = tmp_path_factory.mktemp("quantized")
    results = {}
    for mode in ("int8", "int8-weight-only", "int4-weight-only", "fp8"):
        path = str(folder / f"nr.{mode}.onnx")
        results[mode] = path, quantize_model(nr_export.path, path, mode, calibration, ALL_FRAMES)
    return results


def _metadata(path):
    return {p.key: json.loads(p.value) for p in onnx.load(path, load_external_data=False).metadata_props}


def _zero_point_types(model):
    constants = {t.name: t for t in model.graph.initializer}
    return {constants[n.input[2]].data_type for n in model.graph.node if n.op_type == "QuantizeLinear"}


def test_int8_is_symmetric_signed_qdq_around_linear_layers(quantized, nr_export):
    path, report = quantized["int8"]
    model = onnx.load(path)
    assert max(o.version for o in model.opset_import if o.domain == "") == QDQ_OPSET
    assert _zero_point_types(model) == {TensorProto.INT8}
    constants = {t.name: t for t in model.graph.initializer}
    zero_points = [numpy_helper.to_array(constants[n.input[2]]) for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert all(np.all(z == 0) for z in zero_points)
    weight_axes = {a.i for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants
                   for a in n.attribute if a.name == "axis"}
    assert weight_axes == {1}  # per output channel of each (in, out) MatMul weight
    source = onnx.shape_inference.infer_shapes(onnx.load(nr_export.path))
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants}
    assert len(quantized_nodes(source)) == sum(n.op_type == "MatMul" and n.input[1] in dequantized
                                               for n in model.graph.node)


def test_quantized_nodes_keep_the_sensitive_layers_float(nr_export):
    model = onnx.shape_inference.infer_shapes(onnx.load(nr_export.path))
    chosen = set(quantized_nodes(model))
    constants = {t.name for t in model.graph.initializer}
    linear = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Conv") and n.input[1] in constants]
    # tiny: 2 vision layers x 6 + projector 2 + 2 decoder layers x 7 + head 1 + patch conv = 30
    assert len(linear) == 30
    # float: the patch conv (reads the input), the projector's 2 layers, 2 gated down projections,
    # the last layer's single-row q/o/gate/up (its down projection counted already) and the level head
    assert len(linear) - len(chosen) == 1 + 2 + 2 + 4 + 1


def test_reports_compare_with_the_source_on_the_cpu(quantized):
    for mode in ("int8", "int8-weight-only", "int4-weight-only"):
        report = quantized[mode][1]
        assert report.runs_on_cpu and report.frames == 20
        assert report.srocc > 0.5 and report.plcc > 0.5 and report.mean_kl >= 0
        assert 0 <= report.mean_abs_score_diff <= report.max_abs_score_diff < 0.5
        assert report.speedup > 0 and report.reference_seconds > 0
    assert "SROCC" in quantized["int8"][1].summary()


def test_fp8_graph_is_written_and_the_report_says_whether_the_cpu_runs_it(quantized, nr_export, ort_cpu_runs):
    path, report = quantized["fp8"]
    assert _zero_point_types(onnx.load(path)) == {TensorProto.FLOAT8E4M3FN}
    pixels = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    if ort_cpu_runs(path, {"pixels": pixels}):  # ONNX Runtime 1.32 and later
        assert report.runs_on_cpu and report.cpu_error is None and report.frames == 20
        assert report.srocc > 0.5 and 0 <= report.max_abs_score_diff < 0.5
        assert "fidelity on ONNX Runtime CPU over 20 frames" in report.summary()
    else:
        assert not report.runs_on_cpu and report.srocc is None and report.cpu_error
        assert "cannot run the quantized model" in report.summary()


def test_weight_only_modes_use_matmul_nbits(quantized):
    for mode, bits in (("int8-weight-only", 8), ("int4-weight-only", 4)):
        nodes = [n for n in onnx.load(quantized[mode][0]).graph.node if n.op_type == "MatMulNBits"]
        assert nodes and {a.i for n in nodes for a in n.attribute if a.name == "bits"} == {bits}


def test_output_keeps_metadata_and_records_the_quantization(quantized, nr_export):
    metadata = _metadata(quantized["int8"][0])
    source = _metadata(nr_export.path)
    assert {k: v for k, v in metadata.items() if k != "vqa_rt.quantization"} == source
    record = metadata["vqa_rt.quantization"]
    assert record["mode"] == "int8" and record["calibration"]["frames"] == 20
    assert record["evaluation"] == "calibration frames" and record["fidelity"]["srocc"] is not None


def test_quantized_model_scores_like_the_source(quantized, nr_export, calibration):
    reference = score(nr_export.path, None, calibration, ALL_FRAMES)
    result = score(quantized["int8"][0], None, calibration, ALL_FRAMES)
    assert result["model"]["quantization"] == "int8" and result["model"]["untrained"] is True
    got = [f["metrics"]["score"] for f in result["frames"]]
    want = [f["metrics"]["score"] for f in reference["frames"]]
    assert np.max(np.abs(np.subtract(got, want))) == pytest.approx(quantized["int8"][1].max_abs_score_diff, abs=1e-5)


def test_unsigned_re_expression_of_int8_activations_is_exact(quantized):
    model = onnx.load(quantized["int8"][0])
    unsigned = onnx.load(quantized["int8"][0])
    assert unsigned_activations(unsigned) > 0 and _zero_point_types(unsigned) == {TensorProto.UINT8}
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    pixels = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    outputs = [ort.InferenceSession(m.SerializeToString(), options).run(None, {"pixels": pixels}) for m in (model, unsigned)]
    for signed, unsigned_out in zip(*outputs):
        np.testing.assert_array_equal(signed, unsigned_out)


def test_identical_models_compare_perfectly(nr_export):
    frames = np.random.default_rng(1).standard_normal((6, 3, 32, 32)).astype(np.float32)
    batches = [(None, {"pixels": frames[i:i + 4]}) for i in range(0, len(frames), 4)]
    report = compare_models(nr_export.path, nr_export.path, batches, batch_size=4)
    assert report.srocc == pytest.approx(1.0) and report.max_abs_score_diff == 0 and report.mean_kl == pytest.approx(0)


def test_bad_inputs_write_nothing(nr_export, qpmap_export, calibration, tmp_path):
    output = tmp_path / "q.onnx"
    with pytest.raises(InputError, match="calibration set too small: 5 frames selected, need at least 16"):
        quantize_model(nr_export.path, str(output), "int8", calibration, ScoreOptions(frame_stride=1, max_frames=5))
    with pytest.raises(InputError, match="unknown quantization mode 'int2'"):
        quantize_model(nr_export.path, str(output), "int2", calibration, ALL_FRAMES)
    with pytest.raises(ModelError, match="is a 'qpmap' model, not a 'nr' model"):
        quantize_model(qpmap_export.path, str(output), "int8", calibration, ALL_FRAMES)
    with pytest.raises(InputError, match="needs the video's frame rate"):
        quantize_model(nr_export.path, str(output), "int8", calibration)  # raw YUV, default 1 frame per second
    assert not os.listdir(tmp_path)


def test_a_quantized_model_is_not_quantized_again(quantized, calibration, tmp_path):
    with pytest.raises(InputError, match="is already quantized \\(int8\\)"):
        quantize_model(quantized["int8"][0], str(tmp_path / "again.onnx"), "int8", calibration, ALL_FRAMES)


@pytest.mark.parametrize("preset, frames", [("tiny-onevision", 1), ("tiny-mplug-owl2", 1), ("tiny-mplug-owl2", 2)])
@pytest.mark.parametrize("mode", ["int8", "int4-weight-only"])
def test_every_family_quantizes_and_its_report_matches_scoring(preset, frames, mode, calibration, tmp_path):
    """LLaVA-OneVision, mPLUG-Owl2 and an mPLUG-Owl2 clip graph: the quantized model scores through the runtime,
    and the report's |Δscore| is what scoring both models on the same frames gives."""
    import dataclasses

    from vqa_rt.export.models.checkpoint import random_init
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    spec = get_spec("nr")
    loaded = random_init(spec, 0, dataclasses.replace(spec.config_from_preset(preset), frames=frames))
    source, output = str(tmp_path / "nr.onnx"), str(tmp_path / f"nr.{mode}.onnx")
    export_onnx(spec, loaded, source)
    report = quantize_model(source, output, mode, calibration, ALL_FRAMES, min_frames=4)
    assert report.runs_on_cpu and report.frames == 20 // frames
    ops = {node.op_type for node in onnx.load(output).graph.node}
    assert ("QuantizeLinear" in ops) if mode == "int8" else ("MatMulNBits" in ops)
    scores = [np.array([f["metrics"]["score"] for f in score(path, None, calibration, ALL_FRAMES)["frames"]])
              for path in (source, output)]
    assert report.max_abs_score_diff == pytest.approx(np.abs(scores[1] - scores[0]).max(), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("preset, quantized_square", [("tiny-mplug-owl2", 14), ("tiny-onevision", 2)])
def test_the_projector_of_every_family_stays_float_and_split_projections_do_not(preset, quantized_square, tmp_path):
    """The layer from the vision width (32) to the decoder's (64) is OneVision's projector and mPLUG-Owl2's visual_fc
    (the ViT's MLP is made 96 wide so that no other layer has that shape): float. mPLUG-Owl2's key/value projections per modality also join in a Concat, but not with constant rows: they
    are quantized like every other decoder projection. MatMul nodes of 64 x 64 weights: mPLUG-Owl2 layer 0 q, o and
    three k and three v (the text branch runs on the text before and after the image), layer 1 three k and three v
    (its q and o see one row); OneVision layer 0 q and o (its k and v are 64 x 32; the projector's second layer
    stays float)."""
    import dataclasses

    from vqa_rt.export.models.checkpoint import random_init
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    spec = get_spec("nr")
    path = str(tmp_path / "nr.onnx")
    config = dataclasses.replace(spec.config_from_preset(preset), vision_intermediate=96)
    export_onnx(spec, random_init(spec, 0, config), path, validate=False)
    model = onnx.shape_inference.infer_shapes(onnx.load(path))
    chosen = set(quantized_nodes(model))
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    linear = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in shapes]
    into_decoder = [n for n in linear if shapes[n.input[1]] == (32, 64)]
    assert len(into_decoder) == 1 and into_decoder[0].name not in chosen
    assert sum(n.name in chosen for n in linear if shapes[n.input[1]] == (64, 64)) == quantized_square
