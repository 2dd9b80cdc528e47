"""No-reference quality from a LLaVA-style VLM, scored in one prefill (AVSVQA NR scheme, Q-Align mechanism).

The scorer runs a CLIP-style vision tower on the frame, projects its patch features
into the language model's embedding space and places them between the prompt's text
embeddings, then runs the Llama-family decoder once over that fixed-length sequence:
no KV cache, no generation. Only the last position matters, so the last decoder layer
computes only that position, and only the LM-head rows of the level words are kept.
The prompt's text embeddings are constants of the model. Outputs: the score
``lo + (hi - lo) * sum_i p_i w_i`` (Q-Align: 1..5), the level probabilities ``p``
(softmax of the level logits) and the level logits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from vqa_rt.errors import ModelError
from vqa_rt.export.models.nr_prompt import word_piece_tokens
from vqa_rt.export.models.vlm_blocks import DecoderLayer, RMSNorm, VisionTower, activation, causal_mask, rotary_tables

QALIGN_PROMPT = "USER: How would you rate the quality of this video?\n<image>\nASSISTANT: The quality of the video is"
QALIGN_LEVELS = ("excellent", "good", "fair", "poor", "bad")
QALIGN_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESIZE_MODES = ("pad", "crop", "stretch")
INIT_STD = 0.02  # random init: transformers' default initializer_range
LEVEL_HEAD_GAIN = 4.0  # random init: spreads untrained level logits so that scores use the scale


@dataclass(frozen=True)
class NRConfig:
    """Architecture, prompt and pre-processing of the NR scorer. The defaults are the ``small`` preset.

    ``vision_layers`` counts the vision layers the scorer runs (LLaVA reads the hidden state
    of layer -2, so a 24-layer CLIP tower contributes 23). Token ids come from the checkpoint's
    tokenizer; left empty they are derived from the prompt by word pieces (random init).
    ``resize``: ``pad`` (to a square with the mean colour, then resize: LLaVA-1.5, Q-Align),
    ``crop`` (shortest side to ``image_size``, centre crop: CLIP) or ``stretch``.
    """

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
    mlp_bias: bool = False
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
        if self.image_size % self.patch_size:
            raise ModelError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if not self.level_ids:
            tokens = word_piece_tokens(self.prompt, self.levels)
            for name, ids in (("prefix_ids", tokens.prefix), ("suffix_ids", tokens.suffix),
                              ("level_ids", tokens.levels)):
                object.__setattr__(self, name, ids)
        elif len(self.level_ids) != len(self.levels):
            raise ModelError(f"{len(self.level_ids)} level token ids for {len(self.levels)} level words")

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + (0 if self.drop_cls else 1)

    @property
    def sequence_length(self) -> int:
        return len(self.prefix_ids) + self.image_tokens + len(self.suffix_ids)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "tiny": dict(image_size=32, patch_size=8, vision_hidden=32, vision_layers=2, vision_heads=4,
                 vision_intermediate=64, text_hidden=64, text_layers=2, text_heads=4, text_kv_heads=2,
                 text_head_dim=16, text_intermediate=128),
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
    """Normalised RGB frames ``(N, 3, S, S)`` -> ``(score, level_probs, level_logits)``: (N,), (N, L), (N, L).

    Its weights are PyTorch's defaults until set: by :func:`build_untrained` or from a checkpoint.
    """

    def __init__(self, config: NRConfig = NRConfig()):
        super().__init__()
        c = self.config = config
        self.vision = VisionTower(c.vision_hidden, c.vision_layers, c.vision_heads, c.vision_intermediate,
                                  c.vision_act, c.vision_eps, c.image_size, c.patch_size)
        self.projector = Projector(c.vision_hidden, c.text_hidden, c.projector_act, c.projector_bias)
        self.prompt_prefix = nn.Parameter(torch.zeros(len(c.prefix_ids), c.text_hidden))
        self.prompt_suffix = nn.Parameter(torch.zeros(len(c.suffix_ids), c.text_hidden))
        self.layers = nn.ModuleList(
            DecoderLayer(c.text_hidden, c.text_heads, c.text_kv_heads, c.text_head_dim, c.text_intermediate,
                         c.text_act, c.rms_eps, c.attention_bias, c.mlp_bias)
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

    def last_hidden(self, pixels: Tensor) -> Tensor:
        """The normalised hidden state at the last prompt position, (N, text_hidden)."""
        batch = pixels.shape[0]
        features = self.vision(pixels)
        image = self.projector(features[:, 1:] if self.config.drop_cls else features)
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
    ``transformers`` initialises LLaVA models (``initializer_range``); norms are 1 and biases 0.
    The level rows are then made orthogonal to the last hidden state of a flat frame of the
    mean colour (an all-zero input), which the untrained model so rates at the middle of the
    scale (uniform level probabilities), and scaled by :data:`LEVEL_HEAD_GAIN`, so that other
    frames' scores spread with how their hidden states differ from it.
    """
    model = NRQualityModel(config)
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(module.weight, std=INIT_STD)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    nn.init.normal_(model.vision.embeddings.class_embedding, std=INIT_STD)
    nn.init.normal_(model.vision.embeddings.position_embedding.weight, std=INIT_STD)
    table = INIT_STD * torch.randn(max((*config.prefix_ids, *config.suffix_ids, 0)) + 1, config.text_hidden)
    with torch.no_grad():
        model.prompt_prefix.copy_(table[list(config.prefix_ids)])
        model.prompt_suffix.copy_(table[list(config.suffix_ids)])
        flat = model.last_hidden(torch.zeros(1, 3, config.image_size, config.image_size))[0]
        direction = flat / flat.norm()
        rows = model.level_head.weight
        rows.sub_(torch.outer(rows @ direction, direction)).mul_(LEVEL_HEAD_GAIN)
    return model.eval()
