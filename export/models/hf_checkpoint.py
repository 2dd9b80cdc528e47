"""What every Hugging Face checkpoint directory loader of the NR scorer shares, from disk only.

A directory holds ``config.json``, ``preprocessor_config.json``, the tokenizer files and the weights
(``model.safetensors``, or shards listed in ``model.safetensors.index.json``). Tensors are read one
at a time with ``safetensors`` (rows only, for the embedding table and the LM head), so a loader
holds no more than the scorer's own weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from vqa_rt.errors import ModelError
from vqa_rt.export.models.checkpoint import LoadedModel, fit_state_dict
from vqa_rt.export.models.nr import NRConfig, NRQualityModel
from vqa_rt.export.models.nr_prompt import tokenizer_tokens
from vqa_rt.export.models.spec import check_field
from vqa_rt.export.quiet import quiet

SUPPORTED = ("LLaVA-1.5 (model_type 'llava': CLIP vision tower, Llama or Mistral decoder), LLaVA-OneVision "
             "('llava_onevision': SigLIP, Qwen2; e.g. Q-SiT) and mPLUG-Owl2 ('mplug_owl2': Q-Align, OneAlign, "
             "DeQA-Score)")

USER_FIELDS = ("prompt", "levels", "level_weights", "score_range", "frames")  # what --config may set with a checkpoint


def unsupported(directory: str, what: str) -> ModelError:
    return ModelError(f"{directory}: {what} is not supported; supported: {SUPPORTED}")


def json_object(path: str) -> dict[str, Any]:
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


def read_model_config(directory: str) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory."""
    if not os.path.isdir(directory):
        raise ModelError(f"{directory}: no such checkpoint directory")
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise ModelError(f"{directory}: missing config.json (not a Hugging Face checkpoint directory)")
    return json_object(path)


def read_processor_config(directory: str) -> tuple[dict[str, Any], str]:
    """``preprocessor_config.json`` (the image processor's settings) and its path."""
    path = os.path.join(directory, "preprocessor_config.json")
    try:
        return json_object(path), path
    except FileNotFoundError:
        raise ModelError(f"{directory}: missing preprocessor_config.json (the image processor's settings)") from None


def normalization(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    """``image_mean`` / ``image_std`` of an image processor config, checked (identity without normalisation)."""
    if cfg.get("do_rescale", True) and abs(cfg.get("rescale_factor", 1 / 255) - 1 / 255) > 1e-9:
        raise ModelError(f"{path}: rescale_factor {cfg['rescale_factor']} is not supported (only 1/255)")
    normalized = cfg.get("do_normalize", True)
    fields = dict(image_mean=tuple(cfg.get("image_mean", (0.0,) * 3)) if normalized else (0.0, 0.0, 0.0),
                  image_std=tuple(cfg.get("image_std", (1.0,) * 3)) if normalized else (1.0, 1.0, 1.0))
    for name in ("image_mean", "image_std"):
        check_field(f"{path}: {name}", fields[name], tuple[float, float, float])
    return fields


def load_tokenizer(directory: str):
    from transformers import AutoTokenizer

    try:
        with quiet("transformers"):  # it warns about configs of model types it does not know (mplug_owl2)
            return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except Exception as exc:  # missing files raise OSError, ValueError and others
        raise ModelError(f"{directory}: cannot load the tokenizer ({str(exc).splitlines()[0]}); "
                         "the directory needs the tokenizer files (tokenizer.json or tokenizer.model and "
                         "tokenizer_config.json)") from None


def _open(path: str):
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise ModelError(f"{path}: missing weight shard")
    try:
        return safe_open(path, framework="pt")
    except Exception as exc:  # SafetensorError, OSError
        raise ModelError(f"{path}: corrupt safetensors file ({str(exc).splitlines()[0]})") from None


class CheckpointWeights:
    """The tensors of a checkpoint directory by name, read on demand as float32. Each read opens its shard and
    closes it again, so the shard's memory-mapped pages do not stay resident between reads."""

    def __init__(self, directory: str):
        index = os.path.join(directory, "model.safetensors.index.json")
        if os.path.isfile(index):
            weight_map = json_object(index).get("weight_map")
            if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
                raise ModelError(f"{index}: not a safetensors index (no \"weight_map\" of tensor names to files)")
            self.files = {name: os.path.join(directory, file) for name, file in weight_map.items()}
            return
        single = os.path.join(directory, "model.safetensors")
        if not os.path.isfile(single):
            raise ModelError(f"{directory}: missing model.safetensors (or model.safetensors.index.json and its shards)")
        with _open(single) as handle:
            self.files = dict.fromkeys(handle.keys(), single)

    def read(self, name: str, rows: tuple[int, ...] | None = None) -> torch.Tensor:
        """Tensor ``name`` (only ``rows`` of its first axis when given), as float32."""
        path = self.files[name]
        with _open(path) as handle:
            try:
                if rows is None:
                    return handle.get_tensor(name).float()
                tensor = handle.get_slice(name)
                return torch.cat([tensor[row:row + 1] for row in rows]).float()
            except Exception as exc:  # truncated or inconsistent data
                raise ModelError(f"{path}: cannot read tensor {name} ({str(exc).splitlines()[0]})") from None

    def source(self, name: str, rows: tuple[int, ...] | None = None) -> TensorSource:
        """What reads tensor ``name`` (or ``rows`` of it) when called."""
        return partial(self.read, name, rows)

    def prompt_and_levels(self, config: NRConfig, embed: str | None, head: str | None,
                          directory: str) -> dict[str, TensorSource]:
        """The scorer's prompt rows (from the embedding table ``embed``) and level rows (from the LM head ``head``)."""
        for what, name in (("token embeddings", embed), ("LM head", head)):
            if name is None:
                raise ModelError(f"{directory}: the checkpoint has no {what}")
        return {"prompt_prefix": self.source(embed, config.prefix_ids),
                "prompt_suffix": self.source(embed, config.suffix_ids),
                "level_head.weight": self.source(head, config.level_ids)}


TensorSource = Callable[[], torch.Tensor]


@dataclass
class CheckpointPlan:
    """A checkpoint's scorer config and, per scorer tensor, what reads it (nothing is read yet):
    :func:`assemble` reads them all into a model; a streamed export reads them one at a time."""

    directory: str
    config: NRConfig
    sources: dict[str, TensorSource]


def scorer_config(directory: str, fields: dict[str, Any], config: NRConfig | None, default: NRConfig,
                  image_token_id: int | None) -> NRConfig:
    """The scorer's config: the checkpoint's ``fields``, the user's :data:`USER_FIELDS` (from ``config``, else
    the family's ``default``) and the prompt's token ids from the checkpoint's tokenizer (see
    :func:`~vqa_rt.export.models.nr_prompt.tokenizer_tokens` for ``image_token_id``)."""
    chosen = {name: getattr(config or default, name) for name in USER_FIELDS}
    tokenizer = load_tokenizer(directory)
    tokens = tokenizer_tokens(tokenizer, chosen["prompt"], chosen["levels"], image_token_id)
    try:
        return NRConfig(**fields, **chosen, prefix_ids=tokens.prefix, suffix_ids=tokens.suffix,
                        level_ids=tokens.levels, tokenizer=type(tokenizer).__name__)
    except (TypeError, ValueError, ZeroDivisionError) as exc:  # sizes a checkpoint config may hold, the scorer cannot
        raise ModelError(f"{directory}: the checkpoint's config does not make an NR model ({exc})") from None


def meta_scorer(plan: CheckpointPlan) -> NRQualityModel:
    """The scorer of ``plan``'s config with its weights on the meta device (its constant buffers are real)."""
    with torch.device("meta"):
        try:
            return NRQualityModel(plan.config).eval()
        except (TypeError, ValueError, ZeroDivisionError, RuntimeError) as exc:
            raise ModelError(f"{plan.directory}: the checkpoint's config does not make an NR model "
                             f"({str(exc).splitlines()[0]})") from None


def assemble(plan: CheckpointPlan) -> LoadedModel:
    """The scorer with every checkpoint tensor read, taken as it is."""
    model = meta_scorer(plan)
    fit_state_dict(model, {name: read() for name, read in plan.sources.items()}, plan.directory, "nr", assign=True)
    return LoadedModel(model, plan.config, untrained=False, source=plan.directory)
