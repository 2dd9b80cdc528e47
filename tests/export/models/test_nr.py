"""The NR scorer (PyTorch): presets, the prefill-only forward pass, untrained init, ONNX export."""

import json

import numpy as np
import onnx
import pytest
import torch

from vqa_rt.errors import ModelError
from vqa_rt.export.models.checkpoint import load_checkpoint, random_init, save_checkpoint
from vqa_rt.export.models.nr import NRConfig
from vqa_rt.export.models.nr_prompt import word_piece_tokens
from vqa_rt.export.models.spec import get_spec
from vqa_rt.export.to_onnx.validate import oracle_session, relative_error
from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb
from vqa_rt.runtime.frames.sources import open_video
from vqa_rt.runtime.frames.synthetic import make_test_clip

SPEC = get_spec("nr")


@pytest.fixture(scope="module")
def tiny(nr_export):
    return nr_export.loaded


@pytest.fixture(scope="module")
def clip_frames(tmp_path_factory, tiny):
    """Normalised frames of three differently distorted clips at the tiny model's input size."""
    folder = tmp_path_factory.mktemp("nrclip")
    size = tiny.config.image_size
    frames = []
    for seed, distortion in enumerate(("none", "jpeg", "blur")):
        make_test_clip(str(folder / "r.yuv"), str(folder / "d.yuv"), 64, 64, 4, seed=seed, distortion=distortion, quality=5)
        with open_video(str(folder / "d.yuv"), 64, 64) as reader:
            frames += [normalize(yuv_to_rgb(f, size=(size, size)), tiny.config.image_mean, tiny.config.image_std)
                       for f in reader]
    return torch.from_numpy(np.stack(frames))


def test_presets_and_parameter_counts():
    counts = {name: sum(p.numel() for p in random_init(SPEC, 0, SPEC.config_from_preset(name)).model.parameters())
              for name in SPEC.presets}
    assert counts["tiny"] < 1_000_000
    assert 10_000_000 < counts["small"] < 100_000_000  # "tens of millions"
    assert SPEC.config_from_preset("small") == NRConfig()
    with pytest.raises(ModelError, match="no config preset .huge. \\(presets: tiny, tiny-onevision, tiny-mplug-owl2, small"):
        SPEC.config_from_preset("huge")


def test_config_derives_prompt_tokens_and_rejects_bad_levels():
    config = NRConfig()
    tokens = word_piece_tokens(config.prompt, config.levels)
    assert (config.prefix_ids, config.suffix_ids, config.level_ids) == (tokens.prefix, tokens.suffix, tokens.levels)
    assert config.sequence_length == len(tokens.prefix) + 196 + len(tokens.suffix)
    with pytest.raises(ModelError, match="one weight each"):
        NRConfig(levels=("good", "bad"), level_weights=(1.0,))
    with pytest.raises(ModelError, match="exactly once"):
        NRConfig(prompt="no image here")


def test_outputs_are_q_align_scores(tiny, clip_frames):
    with torch.no_grad():
        score, probs, logits = tiny.model(clip_frames)
    torch.testing.assert_close(probs, torch.softmax(logits, -1))
    weights = torch.tensor(tiny.config.level_weights)
    torch.testing.assert_close(score, 1 + 4 * (probs * weights).sum(-1))
    assert probs.shape == logits.shape == (len(clip_frames), 5)


def test_untrained_scores_vary_with_the_image_and_a_flat_frame_is_mid_scale(tiny, clip_frames):
    with torch.no_grad():
        score, _, _ = tiny.model(clip_frames)
        flat_score, flat_probs, _ = tiny.model(torch.zeros(1, 3, 32, 32))
    assert float(score.max() - score.min()) > 0.05  # the tiny preset's spread; the small one's is ~1.5
    torch.testing.assert_close(flat_probs, torch.full((1, 5), 0.2), atol=1e-5, rtol=0)
    assert float(flat_score) == pytest.approx(3.0, abs=1e-4)


def test_last_layer_computing_only_the_last_position_is_exact(tiny, clip_frames):
    model = tiny.model
    with torch.no_grad():
        expected = model.last_hidden(clip_frames)
        batch = clip_frames.shape[0]
        image = model.projector(model.vision(clip_frames)[:, 1:])
        x = torch.cat((model.prompt_prefix.expand(batch, -1, -1), image, model.prompt_suffix.expand(batch, -1, -1)), 1)
        for layer in model.layers:
            x = layer(x, model.rope_cos, model.rope_sin, model.mask)  # every position, every layer
        full = model.norm(x[:, -1])
    torch.testing.assert_close(expected, full, rtol=1e-5, atol=1e-6)


def test_checkpoint_round_trip_keeps_config_and_untrained_flag(tiny, tmp_path):
    path = str(tmp_path / "nr.pt")
    save_checkpoint(tiny, path, "nr")
    loaded = load_checkpoint(SPEC, path)
    assert loaded.config == tiny.config and loaded.untrained
    for name, tensor in tiny.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor)


def test_export_validates_batch_1_and_3(nr_export):
    assert list(nr_export.report.max_rel_error) == [(1, 32, 32), (3, 32, 32)]
    for errors in nr_export.report.max_rel_error.values():
        assert set(errors) == {"score", "level_probs", "level_logits"} and max(errors.values()) <= 1e-4


@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_equals_pytorch_on_frames(nr_export, clip_frames, batch):
    pixels = clip_frames[:batch]
    with torch.no_grad():
        expected = [t.numpy() for t in nr_export.loaded.model(pixels)]
    actual = oracle_session(nr_export.path).run(None, {"pixels": pixels.numpy()})
    assert relative_error(actual[0], expected[0]) <= 1e-4
    assert relative_error(actual[2], expected[2], per_row=True) <= 1e-4  # logits, relative to each frame's largest


def test_metadata_carries_prompt_levels_scale_and_untrained_flag(nr_export):
    metadata = {p.key: json.loads(p.value) for p in onnx.load(nr_export.path).metadata_props}
    assert metadata["vqa_rt.kind"] == "nr" and metadata["vqa_rt.untrained"] is True
    assert metadata["vqa_rt.prompt"].startswith("USER: How would you rate the quality of this video?\n<image>")
    assert [(level["word"], level["weight"]) for level in metadata["vqa_rt.levels"]] == [
        ("excellent", 1.0), ("good", 0.75), ("fair", 0.5), ("poor", 0.25), ("bad", 0.0)]
    assert metadata["vqa_rt.score_scale"] == {"name": "quality level (Q-Align)", "min": 1.0, "max": 5.0,
                                              "higher_is_better": True}
    preprocess = metadata["vqa_rt.preprocess"]
    assert preprocess["size"] == [32, 32] and preprocess["resize"] == "pad" and preprocess["sampling"] == {"sample_fps": 1.0}
    graph_input = onnx.load(nr_export.path).graph.input[0]
    assert [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim] == ["batch", 3, 32, 32]


def test_large_models_are_written_with_external_data(tiny, tmp_path, monkeypatch):
    from vqa_rt.export.onnx_tools import files as onnx_files
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    monkeypatch.setattr(onnx_files, "EXTERNAL_DATA_ABOVE", 0)  # every model counts as "above 2 GB"
    path = tmp_path / "nr.onnx"
    report = export_onnx(SPEC, tiny, str(path))
    assert (tmp_path / "nr.onnx.data").stat().st_size > path.stat().st_size
    assert max(max(e.values()) for e in report.max_rel_error.values()) <= 1e-4
