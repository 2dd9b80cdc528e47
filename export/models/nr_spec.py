"""The NR model's spec: how it is built, exported and validated, and how checkpoint directories (Hugging Face
LLaVA-1.5, LLaVA-OneVision, mPLUG-Owl2) load into it. Apart from the model definition (:mod:`.nr`) so that the
checkpoint loaders, which build that model, import no spec."""

from __future__ import annotations

import torch
from torch import Tensor

from vqa_rt.export.models.checkpoint import LoadedModel
from vqa_rt.export.models.hf_checkpoint import CheckpointPlan, assemble, read_model_config, unsupported
from vqa_rt.export.models.hf_llava import FAMILIES as LLAVA_FAMILIES, plan_llava
from vqa_rt.export.models.hf_mplug_owl2 import plan_mplug_owl2
from vqa_rt.export.models.nr import PRESETS, NRConfig, build_untrained
from vqa_rt.export.models.spec import ModelSpec


def plan_hf_checkpoint(directory: str, config: NRConfig | None = None) -> CheckpointPlan:
    """How the scorer is made from a Hugging Face checkpoint directory of a supported family (by its ``model_type``)."""
    raw = read_model_config(directory)
    model_type = raw.get("model_type")
    if model_type in LLAVA_FAMILIES:
        return plan_llava(directory, config)
    if model_type == "mplug_owl2":
        return plan_mplug_owl2(directory, raw, config)
    raise unsupported(directory, f"model_type {model_type!r}")


def load_hf_checkpoint(directory: str, config: NRConfig | None = None) -> LoadedModel:
    """The scorer with a Hugging Face checkpoint directory's weights."""
    return assemble(plan_hf_checkpoint(directory, config))


def _example_inputs(config: NRConfig, batch: int, height: int, width: int) -> tuple[Tensor]:
    return (torch.randn(config.input_shape(batch)),)


def _config_metadata(config: NRConfig) -> dict:
    """The per-config metadata entries: pre-processing, score scale, prompt and levels."""
    low, high = config.score_range
    sampling = {"sample_frames": config.frames} if config.frames > 1 else SPEC.preprocess["sampling"]
    return {
        "family": config.family,
        "frames": config.frames,
        "preprocess": {
            **SPEC.preprocess,
            "sampling": sampling,
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
        "pooling": "by --nr-protocol: mean-score (the mean of the frame or clip scores, which is the score of "
                   "the mean level probabilities) or mean-logits (Q-Align's per-frame protocol: mean level logits, "
                   "then softmax)",
    },
    score_scale={"name": "quality level (Q-Align)", "min": 1.0, "max": 5.0, "higher_is_better": True},
    presets=PRESETS,
    input_size=lambda config: (config.image_size, config.image_size),
    validation_batches=(1, 3),
    row_relative_outputs=("level_logits",),
    config_metadata=_config_metadata,
    load_directory=load_hf_checkpoint,
)
