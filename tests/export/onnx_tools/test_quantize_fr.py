"""Quantizing the trained FR model: int8 Q/DQ on its feature trunk, calibrated and evaluated on manifests of
frame pairs, the per-clip fidelity report checked against scoring, bad inputs."""

import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vqa_rt.errors import InputError, ModelError
from vqa_rt.export.onnx_tools.calibration_sets import evenly_spaced
from vqa_rt.export.onnx_tools.quantize import int8_trunk_convs, quantize_model, trunk_convs
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.synthetic import DISTORTIONS, make_test_clip
from vqa_rt.runtime.pipeline.ladder import score_ladder
from vqa_rt.runtime.pipeline.manifest import read_manifest
from vqa_rt.runtime.pipeline.score import score

W, H, FRAMES = 96, 64, 8


@pytest.fixture(scope="module")
def trained_fr(shipped_fr) -> str:
    return shipped_fr


@pytest.fixture(scope="module")
def manifests(tmp_path_factory, write_csv) -> dict[str, str]:
    """Calibration and evaluation manifests, 4 rows each of 96x64 pairs (8 frames), every distortion at a
    different strength; the two share no scene."""
    folder = tmp_path_factory.mktemp("fr_pairs")
    paths = {}
    for name, first_seed in (("calibration", 10), ("evaluation", 20)):
        rows = []
        for row, distortion in enumerate(DISTORTIONS):
            ref, dist = folder / f"{name}{row}_ref.yuv", folder / f"{name}{row}_dist.yuv"
            make_test_clip(str(ref), str(dist), W, H, FRAMES, seed=first_seed + row, distortion=distortion,
                           quality=(10, 25, 50, 90)[row])
            rows.append({"reference": ref.name, "distorted": dist.name, "width": W, "height": H})
        paths[name] = write_csv(folder / f"{name}.csv", rows)
    return paths


@pytest.fixture(scope="module")
def quantized(trained_fr, manifests, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("fr_int8") / "fr.int8.onnx")
    report = quantize_model(trained_fr, path, "int8", read_manifest(manifests["calibration"]), FrameOptions(),
                            evaluation=read_manifest(manifests["evaluation"]), calibration_frames=16)
    return path, report


def _metadata(path):
    return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}


def test_only_the_feature_trunk_but_its_first_stage_is_int8(quantized, trained_fr):
    path, _ = quantized
    model = onnx.load(path)
    constants = {t.name: t for t in model.graph.initializer}
    dequantized_weights = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"
                           and n.input[0] in constants}
    int8_layers = {n.name for n in model.graph.node if len(n.input) > 1 and n.input[1] in dequantized_weights}
    source = onnx.load(trained_fr)
    assert int8_layers == set(int8_trunk_convs(source))
    assert len(int8_layers) == 16  # ResNet-18's 20 convolutions, the stem included, but layer1's 4
    weights = {n.name: n.input[1] for n in source.graph.node if n.op_type == "Conv"}
    float_trunk = sorted(weights[name] for name in set(trunk_convs(source)) - int8_layers)
    assert float_trunk == [f"trunk.layer1.{block}.conv{conv}.weight" for block in (0, 1) for conv in (1, 2)]
    float_layers = [n for n in model.graph.node if n.op_type in ("DeformConv", "Gemm", "Conv")
                    and n.name not in int8_layers]
    assert {n.op_type for n in float_layers} == {"DeformConv", "Gemm", "Conv"}
    assert all(n.input[1] in constants for n in float_layers)  # float weights, no Q/DQ in front
    dequantized = [constants[n.input[0]] for n in model.graph.node if n.op_type == "DequantizeLinear"
                   and n.input[0] in constants]
    assert {t.data_type for t in dequantized} == {TensorProto.INT8}  # no int32 biases: TensorRT refuses them
    zero_points = [constants[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert {z.data_type for z in zero_points} == {TensorProto.INT8}
    assert all(np.all(numpy_helper.to_array(z) == 0) for z in zero_points)


def test_record_names_the_calibration(quantized, manifests):
    path, _ = quantized
    record = json.loads(_metadata(path)["vqa_rt.quantization"])
    assert record["calibration"] == {"path": manifests["calibration"], "selected": 4 * FRAMES, "frames": 16,
                                     "method": "MinMax"}
    assert record["evaluation"] == manifests["evaluation"]


def test_per_clip_report_matches_scoring_each_row(quantized, trained_fr, manifests):
    """The report's numbers are what `vqa-rt score` gives with either model, row by row (clip = row)."""
    from scipy.stats import spearmanr

    path, report = quantized
    rows = read_manifest(manifests["evaluation"]).rows
    frames, means = {}, {}
    for name, model in (("float", trained_fr), ("int8", path)):
        results = [score(model, row.reference, row.distorted) for row in rows]
        frames[name] = np.array([f["metrics"]["score"] for r in results for f in r["frames"]])
        means[name] = np.array([r["pooled_metrics"]["score"]["mean"] for r in results])
    assert report.frames == len(frames["float"]) == 4 * FRAMES and report.clips == 4
    assert report.max_abs_score_diff == pytest.approx(np.abs(frames["int8"] - frames["float"]).max(), abs=1e-5)
    assert report.per_clip.max_abs_score_diff == pytest.approx(np.abs(means["int8"] - means["float"]).max(), abs=1e-5)
    assert report.per_clip.srocc == pytest.approx(spearmanr(means["float"], means["int8"]).statistic)
    assert report.mean_kl is None  # the FR model has no level probabilities
    assert "per clip (mean score of each of 4 clips)" in report.summary()
    # the trained model's int8 trunk on these clips (the held-out benchmark: benchmarks/results/fr_quantization.md)
    assert report.per_clip.max_abs_score_diff <= 0.05 and report.per_clip.srocc > 0.7


def test_evenly_spaced_indices():
    assert evenly_spaced(10, 4) == [0, 3, 6, 9]
    assert evenly_spaced(3, 64) == [0, 1, 2]
    assert evenly_spaced(100, 16)[-1] == 99 and len(evenly_spaced(100, 16)) == 16


def test_the_trunk_is_found_only_in_an_fr_graph(nr_export):
    with pytest.raises(ModelError, match="no single Concat of two inputs on the batch axis"):
        trunk_convs(onnx.load(nr_export.path))


@pytest.mark.parametrize("stem_stride", [1, 2])
def test_the_first_stage_ends_at_the_next_strided_convolution(stem_stride):
    """A trunk of 4 convolutions (stem, two at its resolution, one strided): the two are the first stage; a
    trunk whose stem is not strided is refused."""
    strides = [stem_stride, 1, 1, 2]
    weight = numpy_helper.from_array(np.zeros((3, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Concat", ["ref", "dist"], ["x0"], name="stack", axis=0)]
    nodes += [helper.make_node("Conv", [f"x{i}", "w"], [f"x{i + 1}"], name=f"conv{i}", strides=[s, s])
              for i, s in enumerate(strides)]
    frames = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 3, 8, 8]) for name in ("ref", "dist")]
    out = helper.make_tensor_value_info("x4", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(nodes, "trunk", frames, [out], [weight]))
    if stem_stride == 1:
        with pytest.raises(ModelError, match="does not start with a strided stem"):
            int8_trunk_convs(model)
    else:
        assert int8_trunk_convs(model) == ["conv0", "conv3"]


def test_bad_fr_inputs_write_nothing(trained_fr, manifests, write_csv, clip, tmp_path):
    output = str(tmp_path / "q.onnx")
    calibration = read_manifest(manifests["calibration"])
    with pytest.raises(InputError, match="an FR model is calibrated on a manifest"):
        quantize_model(trained_fr, output, "int8", VideoInput(clip.dist, clip.width, clip.height))
    with pytest.raises(InputError, match="int4-weight-only quantizes MatMul weights, which an FR model has none"):
        quantize_model(trained_fr, output, "int4-weight-only", calibration)
    with pytest.raises(InputError, match="calibration set too small: 8 frames selected, need at least 16"):
        quantize_model(trained_fr, output, "int8", calibration, FrameOptions(max_frames=2))
    mismatched = write_csv(tmp_path / "mismatched.csv", [
        {"reference": clip.ref, "distorted": clip.dist, "width": clip.width, "height": clip.height},
        {"reference": clip.ref, "distorted": str(tmp_path / "short.yuv"), "width": clip.width,
         "height": clip.height}])
    with open(clip.dist, "rb") as whole, open(tmp_path / "short.yuv", "wb") as short:
        short.write(whole.read()[: clip.width * clip.height * 3 // 2 * 2])  # 2 of 6 frames
    with pytest.raises(InputError, match="reference has 6 frames, distorted has 2"):
        quantize_model(trained_fr, output, "int8", calibration, evaluation=read_manifest(mismatched))
    assert sorted(os.listdir(tmp_path)) == ["mismatched.csv", "short.yuv"]


def test_cli_quantizes_an_fr_model(cli, trained_fr, manifests, tmp_path):
    output, report = tmp_path / "fr.int8.onnx", tmp_path / "fidelity.json"
    done = cli("quantize", trained_fr, "--calibration", manifests["calibration"], "--eval", manifests["evaluation"],
               "--frame-stride", "2", "--calibration-frames", "16", "-o", output, "--report", report)
    assert done.returncode == 0, done.stderr
    assert "per clip (mean score of each of 4 clips)" in done.stdout.decode()
    fidelity = json.loads(report.read_text())["fidelity"]
    assert fidelity["frames"] == 4 * FRAMES // 2 and fidelity["clips"] == 4
    refused = cli("quantize", trained_fr, "--calibration", manifests["calibration"], "--width", "96",
                  "-o", tmp_path / "other.onnx")
    assert refused.returncode == 2 and refused.stderr.decode().count("\n") == 1
    assert "an FR model's manifest gives them per row" in refused.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fidelity.json", "fr.int8.onnx"]


def test_the_int8_model_scores_a_ladder_as_its_pairs_alone(quantized, manifests):
    """Ladder scoring rewrites the int8 graph as it does the float one: each rendition scores as it does alone."""
    path, _ = quantized
    rows = read_manifest(manifests["evaluation"]).rows
    reference, videos = rows[0].reference, [row.distorted for row in rows]  # same size and length: a valid ladder
    for video, joint in zip(videos, score_ladder(path, reference, videos)):
        alone = score(path, reference, video)
        np.testing.assert_allclose([f["metrics"]["score"] for f in joint["frames"]],
                                   [f["metrics"]["score"] for f in alone["frames"]], rtol=0, atol=1e-5)
