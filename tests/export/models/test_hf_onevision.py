"""Loading Hugging Face LLaVA-OneVision checkpoint directories (Q-SiT's family), checked against transformers'
own ``LlavaOnevisionForConditionalGeneration``."""

import json
import shutil

import numpy as np
import pytest
import torch

from vqa_rt.errors import ModelError
from vqa_rt.export.models.nr import QSIT_LEVELS, QSIT_PROMPT
from vqa_rt.export.models.nr_spec import load_hf_checkpoint
from vqa_rt.export.to_onnx.validate import relative_error

pytest.importorskip("transformers")


def transformers_level_logits(checkpoint, config, frames: torch.Tensor) -> np.ndarray:
    """transformers' last-position logits of the level tokens for one S x S frame per prompt: the processor
    makes the base crop and one tile of the same pixels, and expands <image> to the packed feature count."""
    ids = list(checkpoint.tokenizer(QSIT_PROMPT)["input_ids"])
    at = ids.index(checkpoint.image_token_id)
    expanded = ids[:at] + [checkpoint.image_token_id] * checkpoint.image_tokens + ids[at + 1:]
    size = frames.shape[-1]
    with torch.no_grad():
        logits = checkpoint.model(input_ids=torch.tensor([expanded] * len(frames)),
                                  pixel_values=frames[:, None].repeat(1, 2, 1, 1, 1),
                                  image_sizes=torch.tensor([[size, size]] * len(frames))).logits
    return logits[:, -1, list(config.level_ids)].numpy()


@pytest.mark.parametrize("batch", [1, 3])
def test_scorer_level_logits_equal_transformers(onevision_checkpoint, batch):
    loaded = load_hf_checkpoint(onevision_checkpoint.path)
    frames = torch.randn(batch, 3, 30, 30, generator=torch.Generator().manual_seed(batch))
    expected = transformers_level_logits(onevision_checkpoint, loaded.config, frames)
    with torch.no_grad():
        _, _, logits = loaded.model(frames)
    assert relative_error(logits.numpy(), expected, per_row=True) <= 1e-4
    assert np.ptp(expected) > 1e-3  # the logits differ between words, so the comparison means something


def test_config_layout_tokens_and_preprocessing(onevision_checkpoint):
    config = load_hf_checkpoint(onevision_checkpoint.path).config
    tokenizer = onevision_checkpoint.tokenizer
    assert config.family == "llava_onevision" and config.text_qkv_bias and not config.attention_bias
    # 16 base tokens, then 4 rows of 4 with a newline each: as the processor counts an image of the tile's size
    assert config.image_tokens == onevision_checkpoint.image_tokens == 36
    ids = tokenizer(QSIT_PROMPT)["input_ids"]
    assert config.prefix_ids + (onevision_checkpoint.image_token_id,) + config.suffix_ids == tuple(ids)
    # Q-SiT appends the level word's own ids after "... is " (tokenizer([w]).input_ids[0])
    assert config.level_ids == tuple(tokenizer(word)["input_ids"][0] for word in QSIT_LEVELS)
    assert config.levels == QSIT_LEVELS
    assert (config.resize, config.image_mean, config.image_size) == ("stretch", (0.5, 0.5, 0.5), 30)


def test_processor_makes_one_repeated_crop_for_a_frame_of_the_tile_size(onevision_checkpoint):
    from transformers import LlavaOnevisionImageProcessor

    processor = LlavaOnevisionImageProcessor.from_pretrained(onevision_checkpoint.path)
    image = np.random.default_rng(0).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    pixels = processor(image, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 2, 3, 30, 30) and torch.equal(pixels[0, 0], pixels[0, 1])


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(vision_feature_select_strategy="default"), "vision_feature_select_strategy 'default'"),
    (lambda c: c.update(image_grid_pinpoints=[[60, 60]]), "image_grid_pinpoints without \\[30, 30\\]"),
    (lambda c: c["text_config"].update(model_type="llama"), "language model 'llama' in a 'llava_onevision' model"),
])
def test_unsupported_layouts_name_what_is_supported(onevision_checkpoint, tmp_path, edit, message):
    target = tmp_path / "ckpt"
    shutil.copytree(onevision_checkpoint.path, target)
    config = json.loads((target / "config.json").read_text())
    edit(config)
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=message + ".*supported: LLaVA-1.5"):
        load_hf_checkpoint(str(target))
