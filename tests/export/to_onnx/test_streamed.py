"""Streamed weight-only export (checkpoints too large for memory): the same model as exporting in memory and then
quantizing, for every checkpoint family, written without the float model."""

import numpy as np
import onnx
import pytest

from vqa_rt.errors import ModelError
from vqa_rt.export.models.nr import NRConfig
from vqa_rt.export.models.nr_spec import load_hf_checkpoint, plan_hf_checkpoint
from vqa_rt.export.models.spec import get_spec
from vqa_rt.export.onnx_tools.quantize import quantize_onnx
from vqa_rt.export.to_onnx.onnx_export import export_onnx
from vqa_rt.export.to_onnx.streamed import export_streamed
from vqa_rt.export.to_onnx.validate import oracle_session, relative_error

pytest.importorskip("transformers")
MPLUG = "tests/fixtures/mplug_owl2_tiny"
SPEC = get_spec("nr")


@pytest.fixture(params=["llava", "onevision", "mplug_owl2"])
def checkpoint(request, llava_checkpoint, onevision_checkpoint):
    return {"llava": llava_checkpoint.path, "onevision": onevision_checkpoint.path, "mplug_owl2": MPLUG}[request.param]


@pytest.mark.parametrize("bits", [4, 8])
def test_streamed_equals_export_then_quantize(checkpoint, bits, tmp_path):
    streamed, full, quantized = (str(tmp_path / name) for name in ("streamed.onnx", "full.onnx", "quantized.onnx"))
    result = export_streamed(SPEC, plan_hf_checkpoint(checkpoint), streamed, bits)
    loaded = load_hf_checkpoint(checkpoint)
    export_onnx(SPEC, loaded, full)
    quantize_onnx(full, quantized, f"int{bits}-weight-only", None)
    pixels = np.random.default_rng(bits).standard_normal(loaded.config.input_shape(3)).astype(np.float32)
    ours, theirs = (oracle_session(path).run(None, {"pixels": pixels}) for path in (streamed, quantized))
    assert relative_error(ours[2], theirs[2], per_row=True) <= 1e-5
    nodes = [node.op_type for node in onnx.load(quantized).graph.node]
    assert result.quantized_layers == len({n.input[1] for n in onnx.load(streamed).graph.node
                                            if n.op_type == "MatMulNBits"}) > 0
    assert nodes.count("MatMulNBits") >= result.quantized_layers
    metadata = {p.key: p.value for p in onnx.load(streamed, load_external_data=False).metadata_props}
    assert '"streamed": true' in metadata["vqa_rt.quantization"] and metadata["vqa_rt.untrained"] == "false"


def test_streamed_clip_graph_runs(tmp_path):
    config = NRConfig(frames=2)
    result = export_streamed(SPEC, plan_hf_checkpoint(MPLUG, config), str(tmp_path / "clip.onnx"), 4)
    assert "scores a random input" in result.check
    inputs = onnx.load(str(tmp_path / "clip.onnx"), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in inputs][1:] == [2, 3, 28, 28]


def test_only_4_or_8_bits(tmp_path):
    with pytest.raises(ModelError, match="8 or 4 bits, not 2"):
        export_streamed(SPEC, plan_hf_checkpoint(MPLUG), str(tmp_path / "x.onnx"), 2)


def test_a_tensor_of_the_wrong_shape_stops_the_export_and_leaves_nothing(tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    target = tmp_path / "ckpt"
    shutil.copytree(MPLUG, target, ignore=shutil.ignore_patterns("sentencepiece"))
    state = load_file(target / "model.safetensors")
    state["model.layers.1.mlp.down_proj.weight"] = state["model.layers.1.mlp.down_proj.weight"][:, :64].clone()
    save_file(state, target / "model.safetensors")
    output = tmp_path / "out" / "nr.onnx"
    output.parent.mkdir()
    with pytest.raises(ModelError, match="checkpoint tensor layers.1.mlp.down_proj.weight: shape \\[64, 64\\], "
                                         "the model needs \\[64, 128\\]"):
        export_streamed(SPEC, plan_hf_checkpoint(str(target)), str(output), 4)
    assert list(output.parent.iterdir()) == []
