"""The trained QS model that ships with vqa-rt: its weights load with no code run, the shipped ONNX is their
export, and ``vqa-rt qpmap`` / ``vqa-rt export qpmap`` use them when no engine or checkpoint is given."""

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


def metadata(path: str) -> dict:
    return {p.key: json.loads(p.value) for p in onnx.load(path).metadata_props}


def test_the_shipped_weights_are_trained_small_and_safetensors():
    loaded = load_shipped(get_spec("qpmap"))
    assert loaded.untrained is False and loaded.source == "shipped qpmap.safetensors"
    path = os.path.join(os.path.dirname(models.__file__), "weights", "qpmap.safetensors")
    assert os.path.getsize(path) < 2 * 2**20


def test_the_shipped_onnx_is_the_export_of_the_shipped_weights(tmp_path):
    fresh = str(tmp_path / "fresh.onnx")
    export_onnx(get_spec("qpmap"), load_shipped(get_spec("qpmap")), fresh, validate=False)
    shipped_meta = metadata(SHIPPED_QS_MODEL)
    assert shipped_meta["vqa_rt.untrained"] is False
    assert shipped_meta["vqa_rt.weights_source"] == "shipped qpmap.safetensors"
    rgb = np.random.default_rng(5).random((2, 3, 96, 168), dtype=np.float32)
    outputs = [ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {"rgb": rgb})[0]
               for p in (SHIPPED_QS_MODEL, fresh)]
    assert np.max(np.abs(outputs[0] - outputs[1]) / np.abs(outputs[1])) <= 1e-5


def test_qpmap_and_export_use_the_shipped_model_by_default(cli, tmp_path):
    clip = str(tmp_path / "clip.yuv")
    make_test_clip(clip, str(tmp_path / "unused.yuv"), 160, 96, 2, seed=1, distortion="none")
    summary = tmp_path / "summary.json"
    result = cli("qpmap", "-i", clip, "-w", 160, "-h", 96, "--format", "kvazaar", "-o", tmp_path / "roi.txt",
                 "--summary", summary)
    assert result.returncode == 0, result.stderr.decode()
    assert "UNTRAINED" not in result.stderr.decode() and "[untrained]" not in result.stdout.decode()
    model = json.loads(summary.read_text())["model"]
    assert model["untrained"] is False and model["path"] == SHIPPED_QS_MODEL
    result = cli("export", "qpmap", "-o", tmp_path / "qp.onnx")
    assert result.returncode == 0 and b"weights: shipped qpmap.safetensors" in result.stdout, result.stderr
    assert metadata(str(tmp_path / "qp.onnx"))["vqa_rt.untrained"] is False
