"""Loading mPLUG-Owl2 checkpoint directories (Q-Align, OneAlign, DeQA-Score) into the NR scorer, from disk only.

``transformers`` has no mPLUG-Owl2 class (the checkpoints ship remote code, which is never run
here): ``config.json`` is read as JSON with upstream's defaults (``MPLUGOwl2Config`` and
``DEFAULT_VISUAL_CONFIG``), the weights are renamed to the scorer's modules:

- the ViT's fused ``query_key_value`` is interleaved per head (head h's query, key and value rows
  lie together), so it is cut per head into the query, key and value projections;
- the ViT's class token and position table are stored with a leading batch axis;
- the visual abstractor and the modality-adaptive decoder keep their names.

Images are padded to a square with the mean colour and resized, as Q-Align's scorer does
(``expand2square``) before the CLIP processor.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import numpy as np
import torch

from vqa_rt.errors import ModelError
from vqa_rt.export.models.hf_checkpoint import (
    CheckpointPlan,
    CheckpointWeights,
    TensorSource,
    normalization,
    read_processor_config,
    scorer_config,
    unsupported,
)
from vqa_rt.export.models.nr import NRConfig
from vqa_rt.export.models.visual_abstractor import image_position_table, sincos_table

# Upstream's defaults (configuration_mplug_owl2.py): the LLaMA-2 part and DEFAULT_VISUAL_CONFIG.
TEXT_DEFAULTS = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=None, hidden_act="silu", rms_norm_eps=1e-6, rope_theta=10000.0,
                     attention_bias=False, tie_word_embeddings=False, rope_scaling=None)
VISION_DEFAULTS = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       image_size=448, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-6)
ABSTRACTOR_DEFAULTS = dict(num_learnable_queries=64, hidden_size=1024, num_hidden_layers=6, num_attention_heads=16,
                           intermediate_size=2816, layer_norm_eps=1e-6, encoder_hidden_size=1024, grid_size=32)
_VIT, _VIT_LAYER = r"model\.vision_model\.", r"model\.vision_model\.encoder\.layers\.(\d+)\."
_RENAMES = [  # checkpoint name pattern -> scorer name
    (_VIT + r"embeddings\.patch_embed\.weight", "vision.embeddings.patch_embedding.weight"),
    (_VIT + r"embeddings\.cls_token", "vision.embeddings.class_embedding"),
    (_VIT + r"embeddings\.position_embedding", "vision.embeddings.position_embedding.weight"),
    (_VIT + r"embeddings\.pre_layernorm\.(.*)", r"vision.pre_layrnorm.\1"),
    (_VIT_LAYER + r"input_layernorm\.(.*)", r"vision.layers.\1.layer_norm1.\2"),
    (_VIT_LAYER + r"post_attention_layernorm\.(.*)", r"vision.layers.\1.layer_norm2.\2"),
    (_VIT_LAYER + r"self_attn\.dense\.(.*)", r"vision.layers.\1.self_attn.out_proj.\2"),
    (_VIT_LAYER + r"mlp\.(.*)", r"vision.layers.\1.mlp.\2"),
    (_VIT + r"post_layernorm\.(.*)", r"vision.post_layernorm.\1"),
    (r"model\.visual_abstractor\.(.*)", r"abstractor.\1"),
    (r"model\.layers\.(.*)", r"layers.\1"),
    (r"model\.norm\.weight", "norm.weight"),
]
_FUSED_QKV = re.compile(_VIT_LAYER + r"self_attn\.query_key_value\.(weight|bias)")


def _section(raw: dict[str, Any], defaults: dict[str, Any], path: str) -> dict[str, Any]:
    """``defaults`` overridden by ``raw``'s values, each of its default's type (an int where a float is due)."""
    values = {**defaults, **{key: raw[key] for key in defaults if key in raw}}
    for key, value in values.items():
        if defaults[key] is not None and not isinstance(value, type(defaults[key])) and not (
                isinstance(defaults[key], float) and isinstance(value, int)):
            raise ModelError(f"{path}: {key} must be a {type(defaults[key]).__name__}, got {value!r}")
    return values


def _architecture(raw: dict[str, Any], directory: str) -> dict[str, Any]:
    """The NRConfig fields the checkpoint's ``config.json`` decides."""
    path = f"{directory}/config.json"
    text = _section(raw, TEXT_DEFAULTS, path)
    visual = raw.get("visual_config") or {}
    if not isinstance(visual, dict):
        raise ModelError(f"{path}: visual_config must be an object")
    vision = _section(visual.get("visual_model") or {}, VISION_DEFAULTS, path)
    abstractor = _section(visual.get("visual_abstractor") or {}, ABSTRACTOR_DEFAULTS, path)
    if text["rope_scaling"] is not None:
        raise unsupported(directory, f"rope_scaling {text['rope_scaling']!r} (only the default rotary embedding)")
    if text["attention_bias"]:
        raise unsupported(directory, "attention_bias in an mPLUG-Owl2 model")
    grid = vision["image_size"] // vision["patch_size"]
    if abstractor["grid_size"] != grid or abstractor["encoder_hidden_size"] != vision["hidden_size"] or (
            abstractor["hidden_size"] != vision["hidden_size"]):
        raise ModelError(f"{path}: the visual abstractor (grid {abstractor['grid_size']}, width "
                         f"{abstractor['hidden_size']}) does not match the vision model (grid {grid}, width "
                         f"{vision['hidden_size']})")
    heads = text["num_attention_heads"]
    return dict(
        family="mplug_owl2", image_size=vision["image_size"], patch_size=vision["patch_size"],
        vision_hidden=vision["hidden_size"], vision_layers=vision["num_hidden_layers"],
        vision_heads=vision["num_attention_heads"], vision_intermediate=vision["intermediate_size"],
        vision_act="quick_gelu", vision_eps=vision["layer_norm_eps"], drop_cls=False,
        abstractor_queries=abstractor["num_learnable_queries"], abstractor_layers=abstractor["num_hidden_layers"],
        abstractor_heads=abstractor["num_attention_heads"], abstractor_intermediate=abstractor["intermediate_size"],
        abstractor_eps=abstractor["layer_norm_eps"],
        text_hidden=text["hidden_size"], text_layers=text["num_hidden_layers"], text_heads=heads,
        text_kv_heads=text["num_key_value_heads"] or heads, text_head_dim=text["hidden_size"] // heads,
        text_intermediate=text["intermediate_size"], text_act=text["hidden_act"], rms_eps=text["rms_norm_eps"],
        rope_theta=float(text["rope_theta"]),
    )


def _image_processing(directory: str) -> dict[str, Any]:
    cfg, path = read_processor_config(directory)
    try:
        return {**normalization(cfg, path), "resize": "pad"}
    except (TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{path}: bad image processor settings ({exc})") from None


def split_fused_qkv(tensor: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The query, key and value parts of a fused projection whose rows run head by head, q/k/v within a head."""
    per_head = tensor.unflatten(0, (heads, 3, -1))
    return tuple(per_head[:, part].flatten(0, 1) for part in range(3))


def _fused_part(read: TensorSource, heads: int, part: int) -> torch.Tensor:
    return split_fused_qkv(read(), heads)[part]


def _reshaped(read: TensorSource, shape: tuple[int, ...]) -> torch.Tensor:
    return read().reshape(shape)


def _tensor_sources(weights: CheckpointWeights, config: NRConfig) -> dict[str, TensorSource]:
    """What reads each scorer tensor from the checkpoint (as float32)."""
    sources: dict[str, TensorSource] = {}
    for name in weights.files:
        fused = _FUSED_QKV.fullmatch(name)
        if fused:
            for part, projection in enumerate(("q_proj", "k_proj", "v_proj")):
                sources[f"vision.layers.{fused[1]}.self_attn.{projection}.{fused[2]}"] = partial(
                    _fused_part, weights.source(name), config.vision_heads, part)
            continue
        for pattern, target in _RENAMES:
            if re.fullmatch(pattern, name):
                sources[re.sub(pattern, target, name)] = weights.source(name)
                break
    # Stored with a leading batch axis: (1, 1, D) and (1, T, D).
    for name, shape in (("vision.embeddings.class_embedding", (-1,)),
                        ("vision.embeddings.position_embedding.weight", (-1, config.vision_hidden))):
        if name in sources:
            sources[name] = partial(_reshaped, sources[name], shape)
    return sources


def _position_tables(sources: dict[str, TensorSource], config: NRConfig) -> None:
    """Upstream's sin-cos tables for the abstractor layers whose checkpoint leaves them out (they are buffers)."""
    queries = np.arange(config.abstractor_queries, dtype=np.float32)
    q_table = torch.from_numpy(sincos_table(config.vision_hidden, queries))
    k_table = torch.from_numpy(image_position_table(config.vision_hidden, config.grid))
    for layer in range(config.abstractor_layers):
        prefix = f"abstractor.encoder.layers.{layer}.crossattention.attention."
        sources.setdefault(prefix + "q_pos_embed", q_table.clone)
        sources.setdefault(prefix + "k_pos_embed", k_table.clone)


def plan_mplug_owl2(directory: str, raw_config: dict[str, Any], config: NRConfig | None = None) -> CheckpointPlan:
    """How the NR scorer is made from an mPLUG-Owl2 checkpoint (``raw_config``: its ``config.json``).
    ``config`` (optional) supplies only the prompt, level words, weights, score range and frames per prompt."""
    fields = {**_architecture(raw_config, directory), **_image_processing(directory)}
    nr_config = scorer_config(directory, fields, config, NRConfig(), None)
    weights = CheckpointWeights(directory)
    sources = _tensor_sources(weights, nr_config)
    _position_tables(sources, nr_config)
    head = "lm_head.weight" if "lm_head.weight" in weights.files else None
    if head is None and raw_config.get("tie_word_embeddings"):
        head = "model.embed_tokens.weight"
    embed = "model.embed_tokens.weight" if "model.embed_tokens.weight" in weights.files else None
    sources.update(weights.prompt_and_levels(nr_config, embed, head, directory))
    return CheckpointPlan(directory, nr_config, sources)
