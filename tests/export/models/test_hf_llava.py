"""Loading Hugging Face LLaVA checkpoint directories, checked against transformers' own model."""

import json
import shutil

import numpy as np
import pytest
import torch

from vqa_rt.errors import ModelError
from vqa_rt.export.models.checkpoint import load_checkpoint
from vqa_rt.export.models.nr import QALIGN_PROMPT, NRConfig
from vqa_rt.export.models.nr_spec import load_hf_checkpoint
from vqa_rt.export.models.spec import get_spec
from vqa_rt.export.to_onnx.validate import relative_error

pytest.importorskip("transformers")


def transformers_level_logits(checkpoint, config, pixels: torch.Tensor) -> np.ndarray:
    """The transformers model's last-position logits of the level tokens, for the Q-Align prompt."""
    ids = list(checkpoint.tokenizer(QALIGN_PROMPT)["input_ids"])
    at = ids.index(checkpoint.image_token_id)
    expanded = ids[:at] + [checkpoint.image_token_id] * checkpoint.image_tokens + ids[at + 1:]  # as LlavaProcessor does
    input_ids = torch.tensor([expanded] * len(pixels))
    with torch.no_grad():
        logits = checkpoint.model(input_ids=input_ids, pixel_values=pixels).logits
    return logits[:, -1, list(config.level_ids)].numpy()


@pytest.mark.parametrize("text_model", ["llama", "mistral"])
def test_scorer_level_logits_equal_transformers(llava_checkpoint, llava_factory, text_model):
    checkpoint = llava_checkpoint if text_model == "llama" else llava_factory(text_model="mistral")
    loaded = load_hf_checkpoint(checkpoint.path)
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    expected = transformers_level_logits(checkpoint, loaded.config, pixels)
    with torch.no_grad():
        _, _, logits = loaded.model(pixels)
    assert relative_error(logits.numpy(), expected, per_row=True) <= 1e-4
    assert not loaded.untrained and loaded.source == checkpoint.path


def test_config_tokens_and_preprocessing_come_from_the_checkpoint(llava_checkpoint):
    config = load_hf_checkpoint(llava_checkpoint.path).config
    tokenizer = llava_checkpoint.tokenizer
    ids = tokenizer(QALIGN_PROMPT)["input_ids"]
    assert config.prefix_ids + (llava_checkpoint.image_token_id,) + config.suffix_ids == tuple(ids)
    assert tokenizer.convert_ids_to_tokens(list(config.level_ids)) == [
        "\u2581excellent", "\u2581good", "\u2581fair", "\u2581poor", "\u2581bad"]
    assert (config.vision_layers, config.drop_cls, config.image_size, config.text_kv_heads) == (2, True, 32, 2)
    assert config.resize == "pad" and config.image_mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))


def test_prompt_and_levels_can_be_configured(llava_factory):
    checkpoint = llava_factory(levels=("high", "low"))
    custom = NRConfig(levels=("high", "low"), level_weights=(1.0, 0.0), score_range=(0.0, 100.0))
    loaded = load_checkpoint(get_spec("nr"), checkpoint.path, custom)  # a directory goes to the LLaVA loader
    assert loaded.config.levels == ("high", "low") and loaded.config.score_range == (0.0, 100.0)
    with torch.no_grad():
        score, probs, _ = loaded.model(torch.zeros(1, 3, 32, 32))
    assert probs.shape == (1, 2) and float(score) == pytest.approx(100 * float(probs[0, 0]), rel=1e-5)


def test_a_level_word_the_tokenizer_splits_is_refused(llava_checkpoint):
    config = NRConfig(levels=("superb", "good"), level_weights=(1.0, 0.0))
    with pytest.raises(ModelError, match="level word 'superb' is not a single token of this tokenizer"):
        load_hf_checkpoint(llava_checkpoint.path, config)


def _copy(checkpoint, tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(checkpoint.path, target)
    return target


@pytest.mark.parametrize("missing, message", [
    ("config.json", "missing config.json"),
    ("preprocessor_config.json", "missing preprocessor_config.json"),
    ("model.safetensors", "missing model.safetensors"),
    ("tokenizer.json", "cannot load the tokenizer"),
])
def test_missing_checkpoint_files(llava_checkpoint, tmp_path, missing, message):
    target = _copy(llava_checkpoint, tmp_path)
    (target / missing).unlink()
    with pytest.raises(ModelError, match=message):
        load_hf_checkpoint(str(target))


def test_corrupt_safetensors(llava_checkpoint, tmp_path):
    target = _copy(llava_checkpoint, tmp_path)
    (target / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(ModelError, match="model.safetensors: corrupt safetensors file"):
        load_hf_checkpoint(str(target))


def test_truncated_safetensors(llava_checkpoint, tmp_path):
    target = _copy(llava_checkpoint, tmp_path)
    data = (target / "model.safetensors").read_bytes()
    (target / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="model.safetensors"):
        load_hf_checkpoint(str(target))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(model_type="llava_next"), "model_type 'llava_next' is not supported; supported: LLaVA"),
    (lambda c: c["vision_config"].update(model_type="siglip_vision_model"),
     "vision tower 'siglip_vision_model' in a 'llava' model is not supported"),
    (lambda c: c["text_config"].update(model_type="qwen2"), "language model 'qwen2' in a 'llava' model is not supported"),
])
def test_unsupported_architectures_name_what_is_supported(llava_checkpoint, tmp_path, edit, message):
    target = _copy(llava_checkpoint, tmp_path)
    config = json.loads((target / "config.json").read_text())
    edit(config)
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=message):
        load_hf_checkpoint(str(target))


def test_export_from_a_checkpoint_directory_validates(llava_checkpoint, tmp_path):
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    spec = get_spec("nr")
    loaded = load_checkpoint(spec, llava_checkpoint.path)
    report = export_onnx(spec, loaded, str(tmp_path / "nr.onnx"))
    assert max(max(e.values()) for e in report.max_rel_error.values()) <= 1e-4
