"""The trained weights that ship with vqa-rt (QP map, FR): they load with no code run, exports made from them say
so, the shipped QS ONNX is their export, and the commands use them when no engine or checkpoint is given."""

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from vqa_rt.export import models
from vqa_rt.export.models.checkpoint import load_shipped
from vqa_rt.export.models.spec import get_spec
from vqa_rt.export.to_onnx.onnx_export import export_onnx
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.qpmaps.shipped import SHIPPED_QS_MODEL

pytest.importorskip("safetensors")

SHIPPED = ("qpmap", "fr")


def metadata(path: str) -> dict:
    return {p.key: json.loads(p.value) for p in onnx.load(path).metadata_props}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("shipped")
    paths = str(folder / "ref.yuv"), str(folder / "dist.yuv")
    make_test_clip(*paths, 160, 96, 3, seed=1)
    return paths


@pytest.mark.parametrize("kind", SHIPPED)
def test_the_shipped_weights_are_trained_small_safetensors_and_export_by_default(kind, cli, tmp_path):
    loaded = load_shipped(get_spec(kind))
    assert loaded.untrained is False and loaded.source == f"shipped {kind}.safetensors"
    assert os.path.getsize(os.path.join(os.path.dirname(models.__file__), "weights", f"{kind}.safetensors")) < 30e6
    result = cli("export", kind, "-o", tmp_path / "m.onnx")
    assert result.returncode == 0 and f"weights: shipped {kind}.safetensors".encode() in result.stdout, result.stderr
    assert b"UNTRAINED" not in result.stdout and b"validated against PyTorch" in result.stdout
    meta = metadata(str(tmp_path / "m.onnx"))
    assert meta["vqa_rt.untrained"] is False and meta["vqa_rt.weights_source"] == f"shipped {kind}.safetensors"


def test_the_shipped_qs_onnx_is_the_export_of_the_shipped_weights(tmp_path):
    fresh = str(tmp_path / "fresh.onnx")
    export_onnx(get_spec("qpmap"), load_shipped(get_spec("qpmap")), fresh, validate=False)
    shipped_meta = metadata(SHIPPED_QS_MODEL)
    assert shipped_meta["vqa_rt.untrained"] is False
    assert shipped_meta["vqa_rt.weights_source"] == "shipped qpmap.safetensors"
    rgb = np.random.default_rng(5).random((2, 3, 96, 168), dtype=np.float32)
    outputs = [ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {"rgb": rgb})[0]
               for p in (SHIPPED_QS_MODEL, fresh)]
    assert np.max(np.abs(outputs[0] - outputs[1]) / np.abs(outputs[1])) <= 1e-5


def test_qpmap_uses_the_shipped_model_by_default(cli, clip, tmp_path):
    summary = tmp_path / "summary.json"
    result = cli("qpmap", "-i", clip[0], "-w", 160, "-h", 96, "--format", "kvazaar", "-o", tmp_path / "roi.txt",
                 "--summary", summary)
    assert result.returncode == 0, result.stderr.decode()
    assert "UNTRAINED" not in result.stderr.decode() and "[untrained]" not in result.stdout.decode()
    model = json.loads(summary.read_text())["model"]
    assert model["untrained"] is False and model["path"] == SHIPPED_QS_MODEL
    assert model["weights"] == "shipped qpmap.safetensors"


def test_scores_from_the_shipped_fr_weights_are_labelled_trained(cli, clip, tmp_path):
    assert cli("export", "fr", "-o", tmp_path / "fr.onnx").returncode == 0
    out = tmp_path / "scores.json"
    result = cli("score", "--engine", tmp_path / "fr.onnx", "--reference", clip[0], "--distorted", clip[1],
                 "-w", 160, "-h", 96, "--output", out)
    assert result.returncode == 0 and b"UNTRAINED" not in result.stderr, result.stderr
    model = json.loads(out.read_text())["model"]
    assert model["untrained"] is False and model["weights"] == "shipped fr.safetensors"
