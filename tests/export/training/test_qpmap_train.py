"""``vqa-rt train qpmap``: a tiny seeded run, resumed halfway, equals the same run uninterrupted; its weights load
as a trained checkpoint."""

import json

import pytest
import torch

pytest.importorskip("pytorch_msssim")
pytest.importorskip("skimage")

from vqa_rt.export.training.loop import save_weights  # noqa: E402
from vqa_rt.export.training.qpmap_train import TrainOptions, train  # noqa: E402

TINY = TrainOptions(steps=4, batch=1, crop=176, synthetic_images=1, validate_every=4, checkpoint_every=1)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return train(TINY, str(tmp_path_factory.mktemp("straight")), log=lambda line: None)


def test_a_resumed_run_equals_an_uninterrupted_one(straight, tmp_path):
    lines = []
    _, first = train(TINY, str(tmp_path), log=lines.append, stop_at=2)
    assert first["step"] == 2 and lines[-1] == "stopped at step 2; rerun to resume"
    resumed, record = train(TINY, str(tmp_path), log=lines.append)
    assert any(line.startswith("resumed at step 2") for line in lines)
    model, expected = straight
    assert record["step"] == 4 and record["history"] == expected["history"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_other_options_do_not_resume_a_checkpoint(tmp_path):
    from vqa_rt.errors import InputError

    train(TINY, str(tmp_path), log=lambda line: None, stop_at=1)
    with pytest.raises(InputError, match="was made with other options"):
        train(TrainOptions(**{**TINY.__dict__, "seed": 1}), str(tmp_path), log=lambda line: None)


def test_the_weights_load_as_a_trained_checkpoint_without_running_code(straight, tmp_path, cli):
    model, record = straight
    weights = tmp_path / "qs.safetensors"
    save_weights(model, "qpmap", record, str(weights))
    onnx = tmp_path / "qs.onnx"
    result = cli("export", "qpmap", "--checkpoint", weights, "-o", onnx)
    assert result.returncode == 0, result.stderr.decode()
    assert "UNTRAINED" not in result.stdout.decode()
    import onnx as onnx_lib

    meta = {p.key: p.value for p in onnx_lib.load(str(onnx)).metadata_props}
    assert json.loads(meta["vqa_rt.untrained"]) is False
