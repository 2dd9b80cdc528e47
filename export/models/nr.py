"""No-reference quality from a vision-language model, scored in one prefill (AVSVQA NR scheme, Q-Align mechanism).

The scorer runs the VLM's vision tower on the frame, turns its features into image tokens in the
language model's embedding space and places them between the prompt's text embeddings, then runs
the decoder once over that fixed-length sequence: no KV cache, no generation. Only the last
position matters, so the last decoder layer computes only that position, and only the LM-head rows
of the level words are kept. The prompt's text embeddings are constants of the model. Outputs: the
score ``lo + (hi - lo) * sum_i p_i w_i`` (Q-Align: 1..5), the level probabilities ``p`` (softmax of
the level logits) and the level logits.

Three families (``family``), each as its checkpoints compute it:

- ``llava``: CLIP ViT, a two-layer MLP projector, a Llama/Mistral decoder (LLaVA-1.5);
- ``llava_onevision``: SigLIP ViT, the projector, a Qwen2 decoder; one frame at the tower's input size
  is laid out as the processor does for an image of that size: the base crop's tokens, then the
  same features as a grid with a learned newline token after each row;
- ``mplug_owl2``: CLIP ViT with a final norm, the visual abstractor (``Q + 1`` tokens per image),
  a Llama decoder whose norms and key/value projections differ for image and text positions.

With ``frames`` > 1 the graph takes a clip of that many frames and places all their image tokens,
frame after frame, where the prompt's one image goes (Q-Align's video prompt).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from vqa_rt.errors import ModelError
from vqa_rt.export.models.nr_prompt import word_piece_tokens
from vqa_rt.export.models.visual_abstractor import VisualAbstractor
from vqa_rt.export.models.vlm_blocks import (
    CLIP_VIT,
    MPLUG_OWL2_VIT,
    SIGLIP_VIT,
    DecoderLayer,
    RMSNorm,
    VisionTower,
    activation,
    causal_mask,
    rotary_tables,
)

QALIGN_PROMPT = "USER: How would you rate the quality of this video?\n<image>\nASSISTANT: The quality of the video is"
QALIGN_LEVELS = ("excellent", "good", "fair", "poor", "bad")
QALIGN_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)
# Q-SiT's prompt (eval_scripts/qsit_transformers_test_iqa.py): one user turn with the image first, rendered with
# LLaVA-OneVision's Qwen chat template, then "The quality of this image is " appended; capitalised level words.
QSIT_PROMPT = ("<|im_start|>user\n<image>\nAssume you are an image quality evaluator. \nYour rating should be chosen "
               "from the following five categories: Excellent, Good, Fair, Poor, and Bad (from high to low). \nHow "
               "would you rate the quality of this image?<|im_end|>\n<|im_start|>assistant\nThe quality of this "
               "image is ")
QSIT_LEVELS = ("Excellent", "Good", "Fair", "Poor", "Bad")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESIZE_MODES = ("pad", "crop", "stretch")
VISION_KINDS = {"llava": CLIP_VIT, "llava_onevision": SIGLIP_VIT, "mplug_owl2": MPLUG_OWL2_VIT}
FAMILIES = tuple(VISION_KINDS)
MULTI_FRAME_FAMILIES = ("llava", "mplug_owl2")  # LLaVA-OneVision's video path pools frames differently
INIT_STD = 0.02  # random init: transformers' default initializer_range
LEVEL_HEAD_GAIN = 4.0  # random init: spreads untrained level logits so that scores use the scale


@dataclass(frozen=True)
class NRConfig:
    """Architecture, prompt and pre-processing of the NR scorer. The defaults are the ``small`` preset.

    ``family``: ``llava``, ``llava_onevision`` or ``mplug_owl2`` (see the module). ``frames``: frames
    per prompt (1: a frame is scored alone). ``abstractor_*``: mPLUG-Owl2's visual abstractor
    (its width is ``vision_hidden``). ``vision_layers`` counts the vision layers the scorer runs
    (LLaVA reads the hidden state of layer -2, so a 24-layer CLIP tower contributes 23). Token ids come
    from the checkpoint's tokenizer; left empty they are derived from the prompt by word pieces (random init).
    ``resize``: ``pad`` (to a square with the mean colour, then resize: LLaVA-1.5, Q-Align),
    ``crop`` (shortest side to ``image_size``, centre crop: CLIP) or ``stretch``.
    """

    family: str = "llava"
    frames: int = 1
    image_size: int = 224
    patch_size: int = 16
    vision_hidden: int = 384
    vision_layers: int = 6
    vision_heads: int = 6
    vision_intermediate: int = 1536
    vision_act: str = "quick_gelu"
    vision_eps: float = 1e-5
    drop_cls: bool = True
    projector_act: str = "gelu"
    projector_bias: bool = True
    text_hidden: int = 512
    text_layers: int = 8
    text_heads: int = 8
    text_kv_heads: int = 2
    text_head_dim: int = 64
    text_intermediate: int = 1408
    text_act: str = "silu"
    rms_eps: float = 1e-5
    rope_theta: float = 10000.0
    attention_bias: bool = False
    text_qkv_bias: bool = False
    mlp_bias: bool = False
    abstractor_queries: int = 64
    abstractor_layers: int = 6
    abstractor_heads: int = 16
    abstractor_intermediate: int = 2816
    abstractor_eps: float = 1e-6
    prompt: str = QALIGN_PROMPT
    levels: tuple[str, ...] = QALIGN_LEVELS
    level_weights: tuple[float, ...] = QALIGN_WEIGHTS
    score_range: tuple[float, float] = (1.0, 5.0)
    prefix_ids: tuple[int, ...] = ()
    suffix_ids: tuple[int, ...] = ()
    level_ids: tuple[int, ...] = ()
    tokenizer: str = "word pieces (random init)"
    resize: str = "pad"
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        if len(self.levels) < 2 or len(self.levels) != len(self.level_weights):
            raise ModelError(f"need two or more level words with one weight each, got {list(self.levels)} "
                             f"and {list(self.level_weights)}")
        if self.resize not in RESIZE_MODES:
            raise ModelError(f"unknown resize mode {self.resize!r} (known: {', '.join(RESIZE_MODES)})")
        if self.family not in FAMILIES:
            raise ModelError(f"unknown family {self.family!r} (known: {', '.join(FAMILIES)})")
        if self.frames < 1 or (self.frames > 1 and self.family not in MULTI_FRAME_FAMILIES):
            raise ModelError(f"frames {self.frames}: clips of several frames in one prompt are supported for "
                             f"{' and '.join(MULTI_FRAME_FAMILIES)} models, one frame or more")
        if self.image_size < self.patch_size:
            raise ModelError(f"image_size {self.image_size} is smaller than patch_size {self.patch_size}")
        if not self.level_ids:
            tokens = word_piece_tokens(self.prompt, self.levels)
            for name, ids in (("prefix_ids", tokens.prefix), ("suffix_ids", tokens.suffix),
                              ("level_ids", tokens.levels)):
                object.__setattr__(self, name, ids)
        elif len(self.level_ids) != len(self.levels):
            raise ModelError(f"{len(self.level_ids)} level token ids for {len(self.levels)} level words")

    def input_shape(self, batch: int) -> tuple[int, ...]:
        """The model's input shape: (batch, 3, S, S), or (batch, frames, 3, S, S) for clips."""
        frame = (3, self.image_size, self.image_size)
        return (batch, self.frames, *frame) if self.frames > 1 else (batch, *frame)

    @property
    def grid(self) -> int:
        """Patches per side of the vision tower's input."""
        return self.image_size // self.patch_size

    @property
    def vision_tokens(self) -> int:
        """Tokens the vision tower outputs per frame."""
        return self.grid ** 2 + VISION_KINDS[self.family].class_token

    @property
    def image_tokens(self) -> int:
        """Image tokens per frame in the language model's sequence."""
        if self.family == "mplug_owl2":
            return self.abstractor_queries + 1
        if self.family == "llava_onevision":
            return self.grid ** 2 + self.grid * (self.grid + 1)
        return self.vision_tokens - self.drop_cls

    @property
    def image_span(self) -> tuple[int, int]:
        """Where the image tokens of all frames lie in the sequence: (start, end)."""
        return len(self.prefix_ids), len(self.prefix_ids) + self.frames * self.image_tokens

    @property
    def sequence_length(self) -> int:
        return self.image_span[1] + len(self.suffix_ids)

    def to_dict(self) -> dict:
        return asdict(self)


_TINY = dict(image_size=32, patch_size=8, vision_hidden=32, vision_layers=2, vision_heads=4, vision_intermediate=64,
             text_hidden=64, text_layers=2, text_heads=4, text_kv_heads=2, text_head_dim=16, text_intermediate=128)
PRESETS = {
    "tiny": _TINY,
    "tiny-onevision": {**_TINY, "family": "llava_onevision", "image_size": 30, "patch_size": 7,
                       "vision_act": "gelu_pytorch_tanh", "vision_eps": 1e-6, "drop_cls": False, "rms_eps": 1e-6,
                       "rope_theta": 1e6, "text_qkv_bias": True, "image_mean": (0.5,) * 3, "image_std": (0.5,) * 3,
                       "resize": "stretch"},
    "tiny-mplug-owl2": {**_TINY, "family": "mplug_owl2", "image_size": 28, "patch_size": 14, "vision_eps": 1e-6,
                        "drop_cls": False, "text_kv_heads": 4, "rms_eps": 1e-6, "abstractor_queries": 4,
                        "abstractor_layers": 2, "abstractor_heads": 4, "abstractor_intermediate": 48},
    "small": {},
}


class Projector(nn.Module):
    """LLaVA's two-layer MLP from vision features to language-model embeddings."""

    def __init__(self, vision_hidden: int, text_hidden: int, act: str, bias: bool):
        super().__init__()
        self.linear_1 = nn.Linear(vision_hidden, text_hidden, bias=bias)
        self.linear_2 = nn.Linear(text_hidden, text_hidden, bias=bias)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class NRQualityModel(nn.Module):
    """Normalised RGB frames ``(N, 3, S, S)`` (clips ``(N, F, 3, S, S)`` when ``frames`` > 1)
    -> ``(score, level_probs, level_logits)``: (N,), (N, L), (N, L).

    Its weights are PyTorch's defaults until set: by :func:`build_untrained` or from a checkpoint.
    """

    def __init__(self, config: NRConfig = NRConfig()):
        super().__init__()
        c = self.config = config
        self.vision = VisionTower(c.vision_hidden, c.vision_layers, c.vision_heads, c.vision_intermediate,
                                  c.vision_act, c.vision_eps, c.image_size, c.patch_size, VISION_KINDS[c.family])
        if c.family == "mplug_owl2":
            self.abstractor = VisualAbstractor(c.vision_hidden, c.abstractor_layers, c.abstractor_heads,
                                               c.abstractor_intermediate, c.abstractor_eps, c.abstractor_queries,
                                               c.vision_tokens, c.text_hidden)
        else:
            self.projector = Projector(c.vision_hidden, c.text_hidden, c.projector_act, c.projector_bias)
        if c.family == "llava_onevision":
            self.image_newline = nn.Parameter(torch.zeros(c.text_hidden))
        self.prompt_prefix = nn.Parameter(torch.zeros(len(c.prefix_ids), c.text_hidden))
        self.prompt_suffix = nn.Parameter(torch.zeros(len(c.suffix_ids), c.text_hidden))
        image_span = (c.sequence_length, *c.image_span) if c.family == "mplug_owl2" else None
        self.layers = nn.ModuleList(
            DecoderLayer(c.text_hidden, c.text_heads, c.text_kv_heads, c.text_head_dim, c.text_intermediate,
                         c.text_act, c.rms_eps, c.attention_bias, c.mlp_bias, c.text_qkv_bias, image_span)
            for _ in range(c.text_layers)
        )
        self.norm = RMSNorm(c.text_hidden, c.rms_eps)
        self.level_head = nn.Linear(c.text_hidden, len(c.levels), bias=False)
        cos, sin = rotary_tables(c.sequence_length, c.text_head_dim, c.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.register_buffer("mask", causal_mask(c.sequence_length), persistent=False)
        self.register_buffer("level_weights", torch.tensor(c.level_weights, dtype=torch.float32, device="cpu"),
                             persistent=False)

    def image_embeddings(self, pixels: Tensor) -> Tensor:
        """Frames ``(M, 3, S, S)`` -> their image tokens in the language model's space, (M, image_tokens, H)."""
        c = self.config
        features = self.vision(pixels)
        if c.family == "mplug_owl2":
            return self.abstractor(features)
        tokens = self.projector(features[:, 1:] if c.drop_cls else features)
        if c.family == "llava_onevision":
            # A frame at the tower's input size is one crop, so the grid is the base crop's features again.
            rows = tokens.unflatten(1, (c.grid, c.grid))
            newline = self.image_newline.expand(rows.shape[0], c.grid, 1, -1)
            tokens = torch.cat((tokens, torch.cat((rows, newline), dim=2).flatten(1, 2)), dim=1)
        return tokens

    def last_hidden(self, pixels: Tensor) -> Tensor:
        """The normalised hidden state at the last prompt position, (N, text_hidden)."""
        batch = pixels.shape[0]
        if self.config.frames > 1:  # a clip's frames one after another
            image = self.image_embeddings(pixels.flatten(0, 1)).unflatten(0, (batch, -1)).flatten(1, 2)
        else:
            image = self.image_embeddings(pixels)
        x = torch.cat((self.prompt_prefix.expand(batch, -1, -1), image, self.prompt_suffix.expand(batch, -1, -1)), 1)
        for index, layer in enumerate(self.layers):
            x = layer(x, self.rope_cos, self.rope_sin, self.mask, last_only=index == len(self.layers) - 1)
        return self.norm(x[:, -1])

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits = self.level_head(self.last_hidden(pixels))
        probs = torch.softmax(logits, dim=-1)
        low, high = self.config.score_range
        # An elementwise product and a sum, not a MatMul, so weight quantization never touches the level weights.
        return low + (high - low) * (probs * self.level_weights).sum(-1), probs, logits


def build_untrained(config: NRConfig) -> NRQualityModel:
    """The scorer with seeded random weights (from torch's RNG), made so that scores vary with the image.

    Every weight and embedding (patches, positions, the prompt's rows, which come from one
    embedding table so that a repeated token repeats its row) is drawn from N(0, 0.02^2), as
    ``transformers`` initialises LLaVA models (``initializer_range``); norms are 1 and biases 0
    (mPLUG-Owl2's abstractor excepted, see below).
    The level rows are then made orthogonal to the last hidden state of a flat frame of the
    mean colour (an all-zero input), which the untrained model so rates at the middle of the
    scale (uniform level probabilities), and scaled by :data:`LEVEL_HEAD_GAIN`, so that other
    frames' scores spread with how their hidden states differ from it.
    """
    model = NRQualityModel(config)
    # With N(0, 0.02^2) weights mPLUG-Owl2's abstractor would output its queries, blind to the image:
    # its layers keep PyTorch's default initialisation.
    abstractor = set(model.abstractor.modules()) if config.family == "mplug_owl2" else set()
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)) and module not in abstractor:
            nn.init.normal_(module.weight, std=INIT_STD)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    learned = [model.vision.embeddings.class_embedding, model.vision.embeddings.position_embedding.weight,
               getattr(model, "image_newline", None)]
    if config.family == "mplug_owl2":
        learned += [model.abstractor.query_embeds, model.abstractor.vit_eos]
        model.abstractor.reset_positions(config.grid)
    for parameter in learned:
        if parameter is not None:
            nn.init.normal_(parameter, std=INIT_STD)
    table = INIT_STD * torch.randn(max((*config.prefix_ids, *config.suffix_ids, 0)) + 1, config.text_hidden)
    with torch.no_grad():
        model.prompt_prefix.copy_(table[list(config.prefix_ids)])
        model.prompt_suffix.copy_(table[list(config.suffix_ids)])
        flat = model.last_hidden(torch.zeros(config.input_shape(1)))[0]
        direction = flat / flat.norm()
        rows = model.level_head.weight
        rows.sub_(torch.outer(rows @ direction, direction)).mul_(LEVEL_HEAD_GAIN)
    return model.eval()
