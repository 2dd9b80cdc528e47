"""Loading Hugging Face LLaVA-1.5 and LLaVA-OneVision checkpoint directories into the NR scorer, from disk only.

The config is parsed by ``transformers`` (for its defaults); the tokenizer turns the prompt and
level words into token ids; only the tensors the scorer uses are read (the vision layers up to
the feature layer, the embedding rows of the prompt, the LM-head rows of the level words),
as float32. Weight names of both layouts ``transformers`` writes are understood.

LLaVA-OneVision is scored on one crop: the frame resized to the vision tower's input (384x384
for the released models), laid out as the processor lays out an image of that size.
"""

from __future__ import annotations

import re
from typing import Any

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
from vqa_rt.export.models.nr import QSIT_LEVELS, QSIT_PROMPT, NRConfig

FAMILIES = {  # model_type -> (vision tower, language models)
    "llava": ("clip_vision_model", ("llama", "mistral")),
    "llava_onevision": ("siglip_vision_model", ("qwen2",)),
}
_PREFIXES = [  # checkpoint name prefix -> scorer name prefix
    (re.compile(r"^(model\.)?vision_tower\.(vision_model\.)?"), "vision."),
    (re.compile(r"^(model\.)?multi_modal_projector\."), "projector."),
    (re.compile(r"^(model\.)?image_newline$"), "image_newline"),
    (re.compile(r"^(model\.language_model\.|language_model\.model\.)"), "text."),
    (re.compile(r"^(language_model\.)?lm_head\."), "lm_head."),
]


def _read_config(directory: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(directory, local_files_only=True)
    except Exception as exc:  # transformers raises several types for bad configs
        raise ModelError(f"{directory}/config.json: cannot be read as a LLaVA config "
                         f"({str(exc).splitlines()[0]})") from None


def _rope_theta(text, directory: str) -> float:
    rope = dict(getattr(text, "rope_parameters", None) or {})
    if rope.get("rope_type", "default") != "default":
        raise unsupported(directory, f"rope type {rope['rope_type']!r} (only the default rotary embedding)")
    return float(rope.get("rope_theta", getattr(text, "rope_theta", 10000.0)))


def _architecture(config, directory: str) -> dict[str, Any]:
    """The NRConfig fields the checkpoint's config decides."""
    vision, text = config.vision_config, config.text_config
    vision_type, text_types = FAMILIES[config.model_type]
    if vision.model_type != vision_type:
        raise unsupported(directory, f"vision tower {vision.model_type!r} in a {config.model_type!r} model")
    if text.model_type not in text_types:
        raise unsupported(directory, f"language model {text.model_type!r} in a {config.model_type!r} model")
    layer = config.vision_feature_layer
    if not isinstance(layer, int):
        raise unsupported(directory, f"vision_feature_layer {layer!r} (a list of layers)")
    if config.model_type == "llava_onevision":
        _check_one_crop_layout(config, directory)
    layers_used = vision.num_hidden_layers + 1 + layer if layer < 0 else layer
    if not 0 <= layers_used <= vision.num_hidden_layers:
        raise ModelError(f"{directory}: vision_feature_layer {layer} is outside the vision tower")
    heads = text.num_attention_heads
    return dict(
        family=config.model_type, image_size=vision.image_size, patch_size=vision.patch_size,
        vision_hidden=vision.hidden_size,
        vision_layers=layers_used, vision_heads=vision.num_attention_heads,
        vision_intermediate=vision.intermediate_size, vision_act=vision.hidden_act, vision_eps=vision.layer_norm_eps,
        drop_cls=config.vision_feature_select_strategy == "default",
        projector_act=config.projector_hidden_act, projector_bias=getattr(config, "multimodal_projector_bias", True),
        text_hidden=text.hidden_size, text_layers=text.num_hidden_layers, text_heads=heads,
        text_kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        text_head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        text_intermediate=text.intermediate_size, text_act=text.hidden_act, rms_eps=text.rms_norm_eps,
        rope_theta=_rope_theta(text, directory), attention_bias=getattr(text, "attention_bias", False),
        text_qkv_bias=text.model_type == "qwen2", mlp_bias=getattr(text, "mlp_bias", False),
    )


def _check_one_crop_layout(config, directory: str) -> None:
    """A frame of the tower's input size must stay one crop with no unpadding or pooling, as the scorer lays it out."""
    size = config.vision_config.image_size
    if config.vision_feature_select_strategy != "full":
        raise unsupported(directory, f"vision_feature_select_strategy {config.vision_feature_select_strategy!r} "
                          "in a LLaVA-OneVision model (only 'full')")
    if [size, size] not in [list(point) for point in config.image_grid_pinpoints]:
        raise unsupported(directory, f"image_grid_pinpoints without [{size}, {size}] (a frame of the tower's "
                          "input size would be cut into several crops)")
    if not str(config.vision_aspect_ratio).startswith("anyres"):
        raise unsupported(directory, f"vision_aspect_ratio {config.vision_aspect_ratio!r} (only anyres)")


def _image_processing(directory: str, image_size: int, family: str) -> dict[str, Any]:
    """resize mode, mean and std from ``preprocessor_config.json``."""
    cfg, path = read_processor_config(directory)
    try:
        fields = normalization(cfg, path)
        fields["resize"] = "stretch" if family == "llava_onevision" else _resize_mode(cfg, path, image_size)
    except (TypeError, ValueError, AttributeError) as exc:  # a setting of the wrong type
        raise ModelError(f"{path}: bad image processor settings ({exc})") from None
    return fields


def _resize_mode(cfg: dict[str, Any], path: str, image_size: int) -> str:
    """LLaVA-1.5's processor: pad to a square, crop the centre or stretch, to the tower's input size."""
    size = cfg.get("size", {})
    size = size if isinstance(size, dict) else {"shortest_edge": size}
    crop = cfg.get("crop_size", {})
    crop = crop if isinstance(crop, dict) else {"height": crop, "width": crop}
    if cfg.get("do_pad"):
        resize, final = "pad", size.get("shortest_edge", size.get("height"))
    elif cfg.get("do_center_crop") and "shortest_edge" in size:
        resize, final = "crop", crop.get("height") if crop.get("height") == crop.get("width") else None
        final = final if size["shortest_edge"] == final else None
    else:
        resize, final = "stretch", size.get("height") if size.get("height") == size.get("width") else None
    if final != image_size:
        raise ModelError(f"{path}: resize settings {size} / crop {crop} do not give the vision tower's "
                         f"{image_size}x{image_size} input")
    return resize


def _canonical(name: str) -> str | None:
    for pattern, prefix in _PREFIXES:
        if pattern.match(name):
            return pattern.sub(prefix, name, count=1)
    return None


def _scorer_name(canonical: str, config: NRConfig) -> str | None:
    """Where a checkpoint tensor goes in the scorer (None: the scorer does not use it)."""
    match = re.match(r"vision\.encoder\.layers\.(\d+)\.(.*)", canonical)
    if match:
        return f"vision.layers.{match[1]}.{match[2]}" if int(match[1]) < config.vision_layers else None
    if canonical.startswith(("vision.embeddings.", "vision.pre_layrnorm.", "projector.", "image_newline")):
        return canonical
    if canonical.startswith("text.layers.") or canonical == "text.norm.weight":
        return canonical[len("text."):]
    return None


def _tensor_sources(directory: str, config: NRConfig, tied: bool) -> dict[str, TensorSource]:
    """What reads each scorer tensor from the checkpoint (as float32)."""
    weights = CheckpointWeights(directory)
    canonical = {_canonical(name): name for name in weights.files}
    state = {}
    for key, name in canonical.items():
        target = key and _scorer_name(key, config)
        if target:
            state[target] = weights.source(name)
    embed = canonical.get("text.embed_tokens.weight")
    head = canonical.get("lm_head.weight") or (embed if tied else None)
    return {**state, **weights.prompt_and_levels(config, embed, head, directory)}


def plan_llava(directory: str, config: NRConfig | None = None) -> CheckpointPlan:
    """How the NR scorer is made from a LLaVA-1.5 or LLaVA-OneVision checkpoint. ``config`` (optional)
    supplies only the prompt, level words, weights, score range and frames per prompt (default: Q-Align's for LLaVA-1.5,
    Q-SiT's for LLaVA-OneVision); everything else comes from the checkpoint."""
    hf_config = _read_config(directory)
    fields = _architecture(hf_config, directory)
    fields.update(_image_processing(directory, fields["image_size"], fields["family"]))
    default = NRConfig(prompt=QSIT_PROMPT, levels=QSIT_LEVELS) if fields["family"] == "llava_onevision" else NRConfig()
    nr_config = scorer_config(directory, fields, config, default, hf_config.image_token_id)
    text = hf_config.text_config
    window = getattr(text, "sliding_window", None) if getattr(text, "use_sliding_window", True) else None
    if window is not None and nr_config.sequence_length > window:
        raise unsupported(directory, f"a prompt of {nr_config.sequence_length} tokens beyond the sliding window "
                          f"of {window}")
    tied = bool(getattr(hf_config, "tie_word_embeddings", False) or getattr(text, "tie_word_embeddings", False))
    return CheckpointPlan(directory, nr_config, _tensor_sources(directory, nr_config, tied))
