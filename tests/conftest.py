"""Shared fixtures: one exported FR, QP-map and (tiny) NR model per session, a tiny Hugging Face
LLaVA checkpoint, test clips, the CLI, ffmpeg."""

from __future__ import annotations

import csv
import subprocess
import sys
from dataclasses import dataclass

import pytest


@dataclass
class Exported:
    path: str
    loaded: object  # vqa_rt.export.models.checkpoint.LoadedModel
    report: object  # vqa_rt.export.to_onnx.validate.ValidationReport


def _export_seeded(kind: str, tmp_path_factory, preset: str | None = None) -> Exported:
    from vqa_rt.export.models.checkpoint import random_init
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    spec = get_spec(kind)
    loaded = random_init(spec, seed=0, config=spec.config_from_preset(preset) if preset else None)
    path = str(tmp_path_factory.mktemp(kind) / f"{kind}.onnx")
    return Exported(path, loaded, export_onnx(spec, loaded, path))


@pytest.fixture(scope="session")
def fr_export(tmp_path_factory) -> Exported:
    """The default FR model with seeded (untrained) weights, exported and validated once."""
    return _export_seeded("fr", tmp_path_factory)


@pytest.fixture(scope="session")
def shipped_fr(tmp_path_factory) -> str:
    """The FR model with the weights vqa-rt ships (trained: distilled from VMAF), exported once; its path."""
    from vqa_rt.export.models.checkpoint import load_shipped
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    path = str(tmp_path_factory.mktemp("shipped_fr") / "fr.onnx")
    spec = get_spec("fr")
    export_onnx(spec, load_shipped(spec), path, validate=False)
    return path


@pytest.fixture(scope="session")
def qpmap_export(tmp_path_factory) -> Exported:
    """The default QP-map model with seeded (untrained) weights, exported and validated once."""
    return _export_seeded("qpmap", tmp_path_factory)


@pytest.fixture(scope="session")
def nr_export(tmp_path_factory) -> Exported:
    """The ``tiny`` NR model with seeded (untrained) weights, exported and validated once."""
    return _export_seeded("nr", tmp_path_factory, preset="tiny")


@dataclass
class LlavaCheckpoint:
    path: str
    model: object  # transformers.LlavaForConditionalGeneration, with the saved weights
    tokenizer: object  # transformers.PreTrainedTokenizerFast
    image_token_id: int
    image_tokens: int


def make_llava_checkpoint(directory, text_model: str = "llama", extra_words: tuple[str, ...] = (),
                          levels: tuple[str, ...] | None = None) -> LlavaCheckpoint:
    """A tiny LLaVA checkpoint directory written by ``transformers`` itself: random weights (seeded),
    a byte-pair tokenizer trained on the Q-Align prompt and ``levels`` (level words it has never
    seen become several tokens), a LLaVA-1.5 image processor config (pad to square, CLIP mean/std)."""
    import json

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        MistralConfig,
        PreTrainedTokenizerFast,
    )

    from vqa_rt.export.models.nr import CLIP_MEAN, CLIP_STD, QALIGN_LEVELS, QALIGN_PROMPT

    levels = QALIGN_LEVELS if levels is None else levels
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    corpus = [QALIGN_PROMPT.replace("<image>", "")] * 20 + [f"The quality is {w}" for w in (*levels, *extra_words)] * 20
    tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<image>"], show_progress=False))
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(str(directory))
    image_token_id = tokenizer.token_to_id("<image>")
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                              image_size=32, patch_size=8)
    text_cls = {"llama": LlamaConfig, "mistral": MistralConfig}[text_model]
    text = text_cls(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=tokenizer.get_vocab_size(), bos_token_id=1, eos_token_id=2)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token_id, image_seq_length=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(str(directory))
    processor = {"image_processor_type": "LlavaImageProcessor", "do_pad": True, "do_resize": True,
                 "size": {"shortest_edge": 32}, "do_center_crop": True, "crop_size": {"height": 32, "width": 32},
                 "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                 "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD)}
    (directory / "preprocessor_config.json").write_text(json.dumps(processor))
    return LlavaCheckpoint(str(directory), model, fast, image_token_id, (32 // 8) ** 2)


@pytest.fixture(scope="session")
def llava_checkpoint(tmp_path_factory) -> LlavaCheckpoint:
    """A tiny saved Hugging Face LLaVA checkpoint (CLIP vision tower, Llama decoder), random weights."""
    pytest.importorskip("transformers")
    return make_llava_checkpoint(tmp_path_factory.mktemp("llava"))


@pytest.fixture(scope="session")
def llava_factory(tmp_path_factory):
    """Make further tiny LLaVA checkpoints: ``make(text_model=..., extra_words=..., levels=...)``."""
    pytest.importorskip("transformers")
    return lambda **kwargs: make_llava_checkpoint(tmp_path_factory.mktemp("llava"), **kwargs)


def make_onevision_checkpoint(directory) -> LlavaCheckpoint:
    """A tiny LLaVA-OneVision checkpoint directory written by ``transformers`` itself: SigLIP (30x30 input,
    patch 7: a 4x4 grid with 2 pixels dropped, as 384/14 drops 6), a Qwen2 decoder with tied embeddings,
    random weights (seeded), a byte-level BPE tokenizer without BOS trained on Q-SiT's prompt and level
    words, the OneVision image processor config (mean/std 0.5, grid pinpoints of the 30x30 tile)."""
    import json

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        PreTrainedTokenizerFast,
        Qwen2Config,
        SiglipVisionConfig,
    )

    from vqa_rt.export.models.nr import QSIT_LEVELS, QSIT_PROMPT

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    text = QSIT_PROMPT
    for special in specials:
        text = text.replace(special, "")
    tokenizer.train_from_iterator([text] * 20 + list(QSIT_LEVELS) * 20, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=specials[1:])
    fast.save_pretrained(str(directory))
    image_token_id = tokenizer.token_to_id("<image>")
    pinpoints = [[30, 30], [30, 60], [60, 30], [60, 60]]
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                                image_size=30, patch_size=7, vision_use_head=False)
    text_config = Qwen2Config(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2, vocab_size=tokenizer.get_vocab_size(), rope_theta=1e6,
                              tie_word_embeddings=True)
    config = LlavaOnevisionConfig(vision_config=vision, text_config=text_config, image_token_index=image_token_id,
                                  image_grid_pinpoints=pinpoints, tie_word_embeddings=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlavaOnevisionForConditionalGeneration(config).eval()
        with torch.no_grad():  # transformers initialises the newline and biases to constants; make them count
            for name, parameter in model.named_parameters():
                if name.endswith("image_newline") or name.endswith(".bias"):
                    parameter.normal_(std=0.05)
    model.save_pretrained(str(directory))
    processor = {"image_processor_type": "LlavaOnevisionImageProcessor", "do_resize": True,
                 "size": {"height": 30, "width": 30}, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255,
                 "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "do_pad": True,
                 "do_convert_rgb": True, "image_grid_pinpoints": pinpoints}
    (directory / "preprocessor_config.json").write_text(json.dumps(processor))
    return LlavaCheckpoint(str(directory), model, fast, image_token_id, 16 + 4 * 5)


@pytest.fixture(scope="session")
def onevision_checkpoint(tmp_path_factory) -> LlavaCheckpoint:
    """A tiny saved Hugging Face LLaVA-OneVision checkpoint (SigLIP, Qwen2), random weights."""
    pytest.importorskip("transformers")
    return make_onevision_checkpoint(tmp_path_factory.mktemp("onevision"))


@pytest.fixture(scope="session")
def ort_cpu_runs():
    """``runs(path, feed)``: whether ONNX Runtime's CPU provider loads the model at ``path`` and runs it on
    ``feed``; the oracle for what a fidelity report says (FLOAT8 Q/DQ runs on the CPU from ONNX Runtime
    1.32, not before)."""
    import onnxruntime as ort

    def runs(path: str, feed: dict) -> bool:
        try:
            ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feed)
        except Exception:  # ONNX Runtime reports unsupported types at load or at run time
            return False
        return True

    return runs


@pytest.fixture(scope="session")
def write_csv():
    """Write a list of dicts as a CSV with a header; returns the path as a string."""

    def write(path, rows: list[dict]) -> str:
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return str(path)

    return write


@dataclass
class Clip:
    ref: str
    dist: str
    width: int
    height: int
    frames: int


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Clip:
    """A 6-frame 128x96 yuv420p reference and its JPEG-degraded copy."""
    from vqa_rt.runtime.frames.synthetic import make_test_clip

    folder = tmp_path_factory.mktemp("clip")
    ref, dist = str(folder / "ref.yuv"), str(folder / "dist.yuv")
    make_test_clip(ref, dist, 128, 96, 6, seed=3, quality=20)
    return Clip(ref, dist, 128, 96, 6)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    """Path of the ffmpeg shipped by the imageio-ffmpeg wheel."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="session")
def run_ffmpeg(ffmpeg):
    """Run the bundled ffmpeg quietly; raises if it fails."""

    def run(*args: str) -> None:
        subprocess.run([ffmpeg, "-v", "error", "-y", *args], check=True)

    return run


@pytest.fixture(scope="session")
def cli():
    """Run ``vqa-rt`` in a fresh interpreter, as a user would; returns the CompletedProcess."""

    def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vqa_rt.cli", *map(str, args)], input=stdin, capture_output=True, timeout=300
        )

    return run


@pytest.fixture(scope="session")
def tensorrt_bindings():
    """TensorRT's Python module: the full ``tensorrt``, else a lean runtime's (``tensorrt_lean``, or
    ``tensorrt_lean_bindings`` from the split wheels). Its plugin registry and logger work without
    a GPU. Skips when none imports."""
    import importlib

    for name in ("tensorrt", "tensorrt_lean", "tensorrt_lean_bindings"):
        try:
            return importlib.import_module(name)
        except Exception:  # ImportError, or bindings whose libraries fail to load
            continue
    pytest.skip("TensorRT's Python bindings are not installed (neither tensorrt nor a lean runtime: the test "
                "extra brings tensorrt-lean-cu13-libs and -bindings on Linux x86-64)")
