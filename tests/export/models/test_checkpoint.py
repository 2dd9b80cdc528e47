"""Checkpoint loading: strict by default, clear errors, provenance kept."""

import pytest
import torch

from vqa_rt.errors import ModelError
from vqa_rt.export.models.checkpoint import load_checkpoint, random_init, save_checkpoint
from vqa_rt.export.models.fr import FRConfig
from vqa_rt.export.models.spec import get_spec

SPEC = get_spec("fr")
SMALL = FRConfig(trunk_widths=(16, 32, 64, 128), fusion_channels=16, head_hidden=16)


@pytest.fixture(scope="module")
def seeded():
    return random_init(SPEC, seed=2, config=SMALL)


def _scores(model):
    inputs = SPEC.example_inputs(None, 1, 64, 96)
    torch.manual_seed(0)
    inputs = SPEC.example_inputs(None, 1, 64, 96)
    with torch.no_grad():
        return model(*inputs)[0]


def test_saved_checkpoint_round_trips_with_config_and_untrained_flag(seeded, tmp_path):
    path = str(tmp_path / "fr.pt")
    save_checkpoint(seeded, path, "fr")
    loaded = load_checkpoint(SPEC, path)
    assert loaded.config == SMALL and loaded.untrained
    assert torch.equal(_scores(loaded.model), _scores(seeded.model))


def test_plain_state_dict_loads_as_trained_weights(seeded, tmp_path):
    path = str(tmp_path / "plain.pt")
    torch.save(seeded.model.state_dict(), path)
    loaded = load_checkpoint(SPEC, path, config=SMALL)
    assert not loaded.untrained and loaded.source == path
    assert torch.equal(_scores(loaded.model), _scores(seeded.model))


def test_strict_loading_lists_missing_and_unexpected_keys(seeded, tmp_path):
    state = dict(seeded.model.state_dict())
    del state["temporal_head.2.bias"]
    state["extra.weight"] = torch.zeros(1)
    path = str(tmp_path / "bad.pt")
    torch.save(state, path)
    with pytest.raises(ModelError) as error:
        load_checkpoint(SPEC, path, config=SMALL)
    message = str(error.value)
    assert "missing keys: temporal_head.2.bias" in message and "unexpected keys: extra.weight" in message
    loaded = load_checkpoint(SPEC, path, config=SMALL, strict=False)
    assert loaded.model is not None


def test_shape_mismatch_is_reported(seeded, tmp_path):
    path = str(tmp_path / "small.pt")
    torch.save(seeded.model.state_dict(), path)
    with pytest.raises(ModelError, match=r"shape mismatches .*trunk\.conv1\.weight \(16, 3, 7, 7\) vs \(64, 3, 7, 7\)"):
        load_checkpoint(SPEC, path, config=FRConfig())


@pytest.mark.parametrize("content, message", [(None, "no such checkpoint file"), (b"not a checkpoint", "not a readable PyTorch checkpoint")])
def test_missing_or_corrupt_file(tmp_path, content, message):
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        load_checkpoint(SPEC, str(path))


def test_checkpoint_of_another_kind_is_refused(seeded, tmp_path):
    path = str(tmp_path / "other.pt")
    torch.save({"state_dict": seeded.model.state_dict(), "vqa_rt": {"kind": "qpmap"}}, path)
    with pytest.raises(ModelError, match="for model kind 'qpmap', not 'fr'"):
        load_checkpoint(SPEC, path)
