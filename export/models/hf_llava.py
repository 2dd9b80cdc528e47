"""Loading a Hugging Face LLaVA checkpoint directory into the NR scorer, from disk only.

The directory holds ``config.json``, ``preprocessor_config.json``, the tokenizer files
and the weights (``model.safetensors``, or shards listed in ``model.safetensors.index.json``).
The config is parsed by ``transformers`` (for its defaults); the tokenizer turns the
prompt and level words into token ids; the weights are read with ``safetensors``:
only the tensors the scorer uses (the vision layers up to the feature layer, the
embedding rows of the prompt, the LM-head rows of the level words), converted to
float32. Weight names of both layouts ``transformers`` writes are understood.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import torch

from vqa_rt.errors import ModelError
from vqa_rt.export.models.checkpoint import LoadedModel, fit_state_dict
from vqa_rt.export.models.nr import NRConfig, NRQualityModel
from vqa_rt.export.models.nr_prompt import tokenizer_tokens
from vqa_rt.export.models.spec import check_field

SUPPORTED = ("LLaVA (model_type 'llava', LlavaForConditionalGeneration) with a CLIP vision tower "
             "('clip_vision_model') and a Llama or Mistral language model ('llama', 'mistral')")
TEXT_MODELS = ("llama", "mistral")
PROMPT_FIELDS = ("prompt", "levels", "level_weights", "score_range")
_PREFIXES = [  # checkpoint name prefix -> scorer name prefix
    (re.compile(r"^(model\.)?vision_tower\.(vision_model\.)?"), "vision."),
    (re.compile(r"^(model\.)?multi_modal_projector\."), "projector."),
    (re.compile(r"^(model\.language_model\.|language_model\.model\.)"), "text."),
    (re.compile(r"^(language_model\.)?lm_head\."), "lm_head."),
]


def _unsupported(directory: str, what: str) -> ModelError:
    return ModelError(f"{directory}: {what} is not supported; supported: {SUPPORTED}")


def _json_object(path: str) -> dict[str, Any]:
    """A checkpoint's JSON file, which must hold an object; FileNotFoundError when it is missing."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not a JSON file") from None
    if not isinstance(value, dict):
        raise ModelError(f"{path}: must hold a JSON object, got {type(value).__name__}")
    return value


def _read_config(directory: str):
    from transformers import AutoConfig

    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise ModelError(f"{directory}: missing config.json (not a Hugging Face checkpoint directory)")
    model_type = _json_object(path).get("model_type")
    if model_type != "llava":
        raise _unsupported(directory, f"model_type {model_type!r}")
    try:
        return AutoConfig.from_pretrained(directory, local_files_only=True)
    except Exception as exc:  # transformers raises several types for bad configs
        raise ModelError(f"{path}: cannot be read as a LLaVA config ({str(exc).splitlines()[0]})") from None


def _rope_theta(text, directory: str) -> float:
    rope = dict(getattr(text, "rope_parameters", None) or {})
    if rope.get("rope_type", "default") != "default":
        raise _unsupported(directory, f"rope type {rope['rope_type']!r} (only the default rotary embedding)")
    return float(rope.get("rope_theta", getattr(text, "rope_theta", 10000.0)))


def _architecture(config, directory: str) -> dict[str, Any]:
    """The NRConfig fields the checkpoint's config decides."""
    vision, text = config.vision_config, config.text_config
    if vision.model_type != "clip_vision_model":
        raise _unsupported(directory, f"vision tower {vision.model_type!r}")
    if text.model_type not in TEXT_MODELS:
        raise _unsupported(directory, f"language model {text.model_type!r}")
    layer = config.vision_feature_layer
    if not isinstance(layer, int):
        raise _unsupported(directory, f"vision_feature_layer {layer!r} (a list of layers)")
    layers_used = vision.num_hidden_layers + 1 + layer if layer < 0 else layer
    if not 0 <= layers_used <= vision.num_hidden_layers:
        raise ModelError(f"{directory}: vision_feature_layer {layer} is outside the vision tower")
    heads = text.num_attention_heads
    return dict(
        image_size=vision.image_size, patch_size=vision.patch_size, vision_hidden=vision.hidden_size,
        vision_layers=layers_used, vision_heads=vision.num_attention_heads,
        vision_intermediate=vision.intermediate_size, vision_act=vision.hidden_act, vision_eps=vision.layer_norm_eps,
        drop_cls=config.vision_feature_select_strategy == "default",
        projector_act=config.projector_hidden_act, projector_bias=config.multimodal_projector_bias,
        text_hidden=text.hidden_size, text_layers=text.num_hidden_layers, text_heads=heads,
        text_kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        text_head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        text_intermediate=text.intermediate_size, text_act=text.hidden_act, rms_eps=text.rms_norm_eps,
        rope_theta=_rope_theta(text, directory), attention_bias=getattr(text, "attention_bias", False),
        mlp_bias=getattr(text, "mlp_bias", False),
    )


def _image_processing(directory: str, image_size: int) -> dict[str, Any]:
    """resize mode, mean and std from ``preprocessor_config.json``."""
    path = os.path.join(directory, "preprocessor_config.json")
    try:
        cfg = _json_object(path)
    except FileNotFoundError:
        raise ModelError(f"{directory}: missing preprocessor_config.json (the image processor's settings)") from None
    try:
        return _processing_fields(cfg, path, image_size)
    except (TypeError, ValueError, AttributeError) as exc:  # a setting of the wrong type
        raise ModelError(f"{path}: bad image processor settings ({exc})") from None


def _processing_fields(cfg: dict[str, Any], path: str, image_size: int) -> dict[str, Any]:
    if cfg.get("do_rescale", True) and abs(cfg.get("rescale_factor", 1 / 255) - 1 / 255) > 1e-9:
        raise ModelError(f"{path}: rescale_factor {cfg['rescale_factor']} is not supported (only 1/255)")
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
    normalized = cfg.get("do_normalize", True)
    fields = dict(resize=resize,
                  image_mean=tuple(cfg.get("image_mean", (0.0,) * 3)) if normalized else (0.0, 0.0, 0.0),
                  image_std=tuple(cfg.get("image_std", (1.0,) * 3)) if normalized else (1.0, 1.0, 1.0))
    for name in ("image_mean", "image_std"):
        check_field(f"{path}: {name}", fields[name], tuple[float, float, float])
    return fields


def _load_tokenizer(directory: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except Exception as exc:  # missing files raise OSError, ValueError and others
        raise ModelError(f"{directory}: cannot load the tokenizer ({str(exc).splitlines()[0]}); "
                         "the directory needs the tokenizer files (tokenizer.json or tokenizer.model and "
                         "tokenizer_config.json)") from None


def _weight_files(directory: str) -> dict[str, str]:
    """Checkpoint tensor name -> the safetensors file holding it."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.isfile(index):
        weight_map = _json_object(index).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
            raise ModelError(f"{index}: not a safetensors index (no \"weight_map\" of tensor names to files)")
        return {name: os.path.join(directory, file) for name, file in weight_map.items()}
    single = os.path.join(directory, "model.safetensors")
    if not os.path.isfile(single):
        raise ModelError(f"{directory}: missing model.safetensors (or model.safetensors.index.json and its shards)")
    return {name: single for name in _open(single).keys()}


def _open(path: str):
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise ModelError(f"{path}: missing weight shard")
    try:
        return safe_open(path, framework="pt")
    except Exception as exc:  # SafetensorError, OSError
        raise ModelError(f"{path}: corrupt safetensors file ({str(exc).splitlines()[0]})") from None


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
    if canonical.startswith(("vision.embeddings.", "vision.pre_layrnorm.", "projector.")):
        return canonical
    if canonical.startswith("text.layers.") or canonical == "text.norm.weight":
        return canonical[len("text."):]
    return None


def _read_weights(directory: str, config: NRConfig, tied: bool) -> dict[str, torch.Tensor]:
    """The scorer's state dict from the checkpoint's tensors (float32)."""
    files = _weight_files(directory)
    handles: dict[str, Any] = {}

    def read(name: str, rows: tuple[int, ...] | None = None) -> torch.Tensor:
        handle = handles.setdefault(files[name], _open(files[name]))
        try:
            if rows is None:
                return handle.get_tensor(name).float()
            tensor = handle.get_slice(name)
            return torch.cat([tensor[row:row + 1] for row in rows]).float()
        except Exception as exc:  # truncated or inconsistent data
            raise ModelError(f"{files[name]}: cannot read tensor {name} ({str(exc).splitlines()[0]})") from None

    canonical = {_canonical(name): name for name in files}
    state = {}
    for key, name in canonical.items():
        target = key and _scorer_name(key, config)
        if target:
            state[target] = read(name)
    embed = canonical.get("text.embed_tokens.weight")
    head = canonical.get("lm_head.weight") or (embed if tied else None)
    for what, name in (("token embeddings", embed), ("LM head", head)):
        if name is None:
            raise ModelError(f"{directory}: the checkpoint has no {what}")
    rows = read(embed, config.prefix_ids + config.suffix_ids)
    state["prompt_prefix"], state["prompt_suffix"] = rows[: len(config.prefix_ids)], rows[len(config.prefix_ids):]
    state["level_head.weight"] = read(head, config.level_ids)
    return state


def load_llava(directory: str, config: NRConfig | None = None) -> LoadedModel:
    """The NR scorer with a LLaVA checkpoint's weights. ``config`` (optional) supplies only the
    prompt, level words, weights and score range; everything else comes from the checkpoint."""
    if not os.path.isdir(directory):
        raise ModelError(f"{directory}: no such checkpoint directory")
    hf_config = _read_config(directory)
    fields = _architecture(hf_config, directory)
    fields.update(_image_processing(directory, fields["image_size"]))
    prompt = {name: getattr(config or NRConfig(), name) for name in PROMPT_FIELDS}
    tokenizer = _load_tokenizer(directory)
    tokens = tokenizer_tokens(tokenizer, prompt["prompt"], prompt["levels"], hf_config.image_token_id)
    try:
        nr_config = NRConfig(**fields, **prompt, prefix_ids=tokens.prefix, suffix_ids=tokens.suffix,
                             level_ids=tokens.levels, tokenizer=type(tokenizer).__name__)
    except (TypeError, ValueError, ZeroDivisionError) as exc:  # sizes a LLaVA config may hold, the scorer cannot
        raise ModelError(f"{directory}: the checkpoint's config does not make an NR model ({exc})") from None
    window = getattr(hf_config.text_config, "sliding_window", None)
    if window is not None and nr_config.sequence_length > window:
        raise _unsupported(directory, f"a prompt of {nr_config.sequence_length} tokens beyond the sliding window "
                           f"of {window}")
    state = _read_weights(directory, nr_config, bool(hf_config.tie_word_embeddings))
    with torch.device("meta"):
        try:
            model = NRQualityModel(nr_config)
        except (TypeError, ValueError, ZeroDivisionError, RuntimeError) as exc:
            raise ModelError(f"{directory}: the checkpoint's config does not make an NR model "
                             f"({str(exc).splitlines()[0]})") from None
    fit_state_dict(model, state, directory, "nr", assign=True)
    return LoadedModel(model.eval(), nr_config, untrained=False, source=directory)
