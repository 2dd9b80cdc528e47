"""The NR model's spec: how it is built, exported and validated, and how checkpoint directories (Hugging Face
LLaVA) load into it. Apart from the model definition (:mod:`.nr`) so that the checkpoint loader, which
builds that model, imports no spec."""

from __future__ import annotations

import torch
from torch import Tensor

from vqa_rt.export.models.checkpoint import LoadedModel
from vqa_rt.export.models.hf_checkpoint import read_model_config, unsupported
from vqa_rt.export.models.hf_llava import FAMILIES as LLAVA_FAMILIES, load_llava
from vqa_rt.export.models.hf_mplug_owl2 import load_mplug_owl2
from vqa_rt.export.models.nr import PRESETS, NRConfig, build_untrained
from vqa_rt.export.models.spec import ModelSpec


def load_hf_checkpoint(directory: str, config: NRConfig | None = None) -> LoadedModel:
    """A Hugging Face checkpoint directory of a supported family, by its ``model_type``."""
    raw = read_model_config(directory)
    model_type = raw.get("model_type")
    if model_type in LLAVA_FAMILIES:
        return load_llava(directory, config)
    if model_type == "mplug_owl2":
        return load_mplug_owl2(directory, raw, config)
    raise unsupported(directory, f"model_type {model_type!r}")


def _example_inputs(config: NRConfig, batch: int, height: int, width: int) -> tuple[Tensor]:
    return (torch.randn(config.input_shape(batch)),)


def _config_metadata(config: NRConfig) -> dict:
    """The per-config metadata entries: pre-processing, score scale, prompt and levels."""
    low, high = config.score_range
    return {
        "preprocess": {
            **SPEC.preprocess,
            "size": [config.image_size, config.image_size],
            "resize": config.resize,
            "mean": list(config.image_mean),
            "std": list(config.image_std),
        },
        "score_scale": {"name": "quality level (Q-Align)", "min": low, "max": high, "higher_is_better": True},
        "prompt": config.prompt,
        "levels": [{"word": word, "weight": weight, "token_id": token}
                   for word, weight, token in zip(config.levels, config.level_weights, config.level_ids)],
    }


SPEC = ModelSpec(
    kind="nr",
    description="no-reference quality from a VLM (LLaVA-1.5, LLaVA-OneVision, mPLUG-Owl2) prompted for a level word, "
                "prefill only",
    config_cls=NRConfig,
    build=build_untrained,
    input_names=("pixels",),
    output_names=("score", "level_probs", "level_logits"),
    dynamic_axes={"pixels": {0: "batch"}},
    example_inputs=_example_inputs,
    validation_sizes=(),
    min_size=1,
    rtol=1e-4,
    preprocess={
        "layout": "NCHW",
        "color": "RGB",
        "value_range": [0.0, 1.0],
        "sampling": {"sample_fps": 1.0},
        "pooling": "a video's score is the mean of its frame scores, which is the score of its mean level "
                   "probabilities (the score is linear in them)",
    },
    score_scale={"name": "quality level (Q-Align)", "min": 1.0, "max": 5.0, "higher_is_better": True},
    presets=PRESETS,
    input_size=lambda config: (config.image_size, config.image_size),
    validation_batches=(1, 3),
    row_relative_outputs=("level_logits",),
    config_metadata=_config_metadata,
    load_directory=load_hf_checkpoint,
)
