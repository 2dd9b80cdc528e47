"""Loading mPLUG-Owl2 checkpoint directories (Q-Align's family), checked against the upstream implementation.

``transformers`` has no mPLUG-Owl2 class, so the oracle is a committed fixture computed once by Q-Align's own
code outside this repository (``tests/fixtures/mplug_owl2_tiny/README.md`` says how): a tiny random
checkpoint, its tokenizer, input ids, pixels and the upstream model's last-position logits.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vqa_rt.errors import ModelError
from vqa_rt.export.models.hf_mplug_owl2 import split_fused_qkv
from vqa_rt.export.models.nr import NRConfig
from vqa_rt.export.models.nr_spec import load_hf_checkpoint
from vqa_rt.export.models.visual_abstractor import image_position_table, sincos_table
from vqa_rt.export.to_onnx.validate import relative_error

pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

FIXTURE = Path(__file__).parents[2] / "fixtures" / "mplug_owl2_tiny"
RTOL = 1e-4  # level logits relative to each row's largest; float32 both sides


@pytest.fixture(scope="module")
def fixture():
    return json.loads((FIXTURE / "expected.json").read_text()), safetensors_torch.load_file(FIXTURE / "expected.safetensors")


def _config(prompt: str, frames: int = 1) -> NRConfig:
    return NRConfig(prompt=prompt.replace("<|image|>", "<image>"), frames=frames)


def _split(ids: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    at = ids.index(-200)
    return tuple(ids[:at]), tuple(ids[at + 1:])


def test_tokens_are_upstreams(fixture):
    meta, _ = fixture
    config = load_hf_checkpoint(str(FIXTURE), _config(meta["prompt_image"])).config
    assert (config.prefix_ids, config.suffix_ids) == _split(meta["input_ids_image"])  # tokenizer_image_token's ids
    assert list(config.level_ids) == meta["level_ids"]  # tokenizer(word).input_ids[1]
    assert config.family == "mplug_owl2" and config.image_tokens == 5 and config.resize == "pad"


def test_image_level_logits_equal_upstream(fixture):
    meta, tensors = fixture
    loaded = load_hf_checkpoint(str(FIXTURE), _config(meta["prompt_image"]))
    with torch.no_grad():
        vision = loaded.model.vision(tensors["pixels_image"])
        features = loaded.model.image_embeddings(tensors["pixels_image"])
        _, _, logits = loaded.model(tensors["pixels_image"])
    assert relative_error(vision.numpy(), tensors["vision_last_hidden"].numpy(), per_row=True) <= RTOL
    assert relative_error(features.numpy(), tensors["image_features"].numpy(), per_row=True) <= RTOL
    expected = tensors["logits_image"][:, meta["level_ids"]].numpy()
    assert relative_error(logits.numpy(), expected, per_row=True) <= RTOL
    assert np.ptp(expected, axis=0).max() > 1e-3  # the three images' logits differ


def test_joint_video_prompt_equals_upstream(fixture):
    """Q-Align's video scorer: all frames of a clip in one prompt, in place of its one image token."""
    meta, tensors = fixture
    loaded = load_hf_checkpoint(str(FIXTURE), _config(meta["prompt_video"], frames=3))
    assert loaded.config.sequence_length == len(meta["input_ids_video"]) - 1 + 3 * 5
    with torch.no_grad():
        _, _, logits = loaded.model(tensors["pixels_video"])
    expected = tensors["logits_video"][:, meta["level_ids"]].numpy()
    assert relative_error(logits.numpy(), expected, per_row=True) <= RTOL


def test_fused_qkv_is_cut_per_head():
    heads, width = 2, 3
    rows = torch.arange(heads * 3 * width, dtype=torch.float32)  # head 0: q q q k k k v v v, then head 1
    q, k, v = split_fused_qkv(rows, heads)
    assert q.tolist() == [0, 1, 2, 9, 10, 11] and k.tolist() == [3, 4, 5, 12, 13, 14] and v.tolist() == [6, 7, 8, 15, 16, 17]


def test_position_tables_equal_the_checkpoints(fixture):
    state = safetensors_torch.load_file(FIXTURE / "model.safetensors")
    prefix = "model.visual_abstractor.encoder.layers.0.crossattention.attention."
    assert np.array_equal(sincos_table(32, np.arange(4, dtype=np.float32)), state[prefix + "q_pos_embed"].numpy())
    assert np.array_equal(image_position_table(32, 2), state[prefix + "k_pos_embed"].numpy())


def test_a_checkpoint_without_position_tables_gets_upstreams(fixture, tmp_path):
    meta, tensors = fixture
    target = tmp_path / "ckpt"
    shutil.copytree(FIXTURE, target)
    state = safetensors_torch.load_file(target / "model.safetensors")
    safetensors_torch.save_file({k: v for k, v in state.items() if "pos_embed" not in k}, target / "model.safetensors")
    with torch.no_grad():
        _, _, logits = load_hf_checkpoint(str(target), _config(meta["prompt_image"])).model(tensors["pixels_image"])
    expected = tensors["logits_image"][:, meta["level_ids"]].numpy()
    assert relative_error(logits.numpy(), expected, per_row=True) <= RTOL


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["visual_config"]["visual_abstractor"].update(grid_size=3), "does not match the vision model"),
    (lambda c: c.update(rope_scaling={"type": "linear", "factor": 2.0}), "rope_scaling .* is not supported"),
    (lambda c: c.update(model_type="qwen2_vl"), "model_type 'qwen2_vl' is not supported; supported: LLaVA-1.5"),
])
def test_bad_configs_are_one_line(tmp_path, edit, message):
    target = tmp_path / "ckpt"
    shutil.copytree(FIXTURE, target)
    config = json.loads((target / "config.json").read_text())
    edit(config)
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=message):
        load_hf_checkpoint(str(target))


def test_a_llama_sentencepiece_tokenizer_gives_upstreams_ids():
    """Released checkpoints ship LLaMA's SentencePiece ``tokenizer.model`` (slow ``LlamaTokenizer`` upstream): the
    ids Q-Align's ``tokenizer_image_token`` made with a tiny one are what the loader's tokenization gives."""
    pytest.importorskip("sentencepiece")
    from vqa_rt.export.models.hf_checkpoint import load_tokenizer
    from vqa_rt.export.models.nr_prompt import tokenizer_tokens

    folder = FIXTURE / "sentencepiece"
    expected = json.loads((folder / "expected_ids.json").read_text())
    tokenizer = load_tokenizer(str(folder))
    for name, prompt in expected["prompts"].items():
        tokens = tokenizer_tokens(tokenizer, prompt.replace("<|image|>", "<image>"), tuple(expected["level_words"]),
                                  None)
        assert (tokens.prefix, tokens.suffix) == _split(expected[f"input_ids_{name}"])
        assert list(tokens.levels) == expected["level_ids"]


@pytest.mark.parametrize("missing, message", [
    ("config.json", "missing config.json"),
    ("preprocessor_config.json", "missing preprocessor_config.json"),
    ("model.safetensors", "missing model.safetensors"),
    ("tokenizer.json", "cannot load the tokenizer"),
])
def test_missing_files_are_one_line(tmp_path, missing, message):
    target = tmp_path / "ckpt"
    shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("sentencepiece"))
    (target / missing).unlink()
    with pytest.raises(ModelError, match=message) as error:
        load_hf_checkpoint(str(target))
    assert "\n" not in str(error.value)
