"""The FR reference model: shapes, score range, config checks, untrained-model sensitivity."""

import pytest
import torch

from vqa_rt.errors import ModelError
from vqa_rt.export.models.checkpoint import random_init
from vqa_rt.export.models.fr import FRConfig, FRModel
from vqa_rt.export.models.spec import get_spec

SPEC = get_spec("fr")


@pytest.fixture(scope="module")
def model():
    return random_init(SPEC, seed=0).model


def test_outputs_are_per_frame_scores_on_the_dcr_scale(model):
    inputs = SPEC.example_inputs(None, 3, 96, 136)
    with torch.no_grad():
        outputs = model(*inputs)
    assert len(outputs) == len(SPEC.output_names)
    for output in outputs:
        assert output.shape == (3,)
        assert torch.all((output >= 1) & (output <= 7))


def test_seeded_init_is_deterministic_and_seed_dependent():
    inputs = SPEC.example_inputs(None, 1, 64, 64)
    scores = [random_init(SPEC, seed).model(*inputs)[0].item() for seed in (5, 5, 6)]
    assert scores[0] == scores[1] != scores[2]


def test_untrained_scores_respond_to_distortion_and_motion(model):
    generator = torch.Generator().manual_seed(1)
    ref = torch.randn(1, 3, 96, 128, generator=generator)
    noisy = ref + 0.8 * torch.randn(1, 3, 96, 128, generator=generator)
    with torch.no_grad():
        clean = model(ref, ref, ref, ref)
        distorted = model(ref, noisy, ref, ref)
        moving = model(ref, ref, torch.roll(ref, 4, dims=3), torch.roll(noisy, 4, dims=3))
    assert abs(clean[1].item() - distorted[1].item()) > 1e-2  # spatial branch sees the noise
    assert abs(clean[2].item() - moving[2].item()) > 1e-2  # temporal branch sees the frame difference


def test_trunk_uses_torchvision_resnet18_names():
    keys = FRModel(FRConfig()).state_dict().keys()
    for key in ("trunk.conv1.weight", "trunk.bn1.running_var", "trunk.layer1.0.conv1.weight",
                "trunk.layer2.0.downsample.0.weight", "trunk.layer4.1.bn2.bias"):
        assert key in keys


def test_config_rejects_unknown_fields_and_bad_stages():
    with pytest.raises(ModelError, match="unknown fr config field.*bogus"):
        SPEC.config_from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="fusion_stages"):
        FRModel(FRConfig(fusion_stages=(5,)))
    assert SPEC.config_from_dict({"fusion_stages": [3, 4]}).fusion_stages == (3, 4)
