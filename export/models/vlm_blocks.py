"""Building blocks of the quality VLMs: a ViT (CLIP, SigLIP or mPLUG-Owl2's variant of CLIP) and
Llama-family decoder layers (Llama, Mistral, Qwen2, and mPLUG-Owl2's modality-adaptive Llama).

Parameter names follow Hugging Face's CLIP and Llama modules (``self_attn.q_proj``,
``mlp.gate_proj``, ``input_layernorm``, ...) so that checkpoint weights map by name.
Attention is written as plain matrix products and a softmax (no fused kernel), which
exports to standard ONNX ``MatMul``/``Softmax`` nodes that quantize and run anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "silu": F.silu,
}


def activation(name: str):
    """The activation function called ``name`` in Hugging Face configs."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r} (supported: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]


def _attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask) v over (N, heads, T, d) tensors, merged back to (N, T, heads * d)."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores + mask
    out = torch.matmul(torch.softmax(scores, dim=-1), v)
    return out.transpose(1, 2).flatten(2)


def _heads(x: Tensor, heads: int) -> Tensor:
    """(N, T, heads * d) -> (N, heads, T, d)."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


# --- vision tower (CLIP ViT) ---------------------------------------------------------------


class VisionAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(hidden, hidden) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (_heads(proj(x), self.heads) for proj in (self.q_proj, self.k_proj, self.v_proj))
        return self.out_proj(_attend(q, k, v, None))


class VisionMLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int, act: str):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(hidden, intermediate), nn.Linear(intermediate, hidden)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VisionLayer(nn.Module):
    """Pre-norm transformer layer of CLIP's encoder."""

    def __init__(self, hidden: int, heads: int, intermediate: int, act: str, eps: float):
        super().__init__()
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(hidden, eps=eps), nn.LayerNorm(hidden, eps=eps)
        self.self_attn = VisionAttention(hidden, heads)
        self.mlp = VisionMLP(hidden, intermediate, act)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


@dataclass(frozen=True)
class ViTKind:
    """How a family's ViT differs from CLIP's: CLIP has a class token, a patch convolution without
    bias and a norm before the layers; SigLIP has none of them but a biased patch convolution;
    mPLUG-Owl2's CLIP also normalises its output (every position)."""

    class_token: bool = True
    patch_bias: bool = False
    pre_norm: bool = True
    post_norm: bool = False


CLIP_VIT, SIGLIP_VIT, MPLUG_OWL2_VIT = ViTKind(), ViTKind(False, True, False), ViTKind(post_norm=True)


class VisionEmbeddings(nn.Module):
    """Patches (a stride-``patch`` convolution, the last incomplete row and column dropped), an optional
    class token, learned positions."""

    def __init__(self, hidden: int, image_size: int, patch: int, kind: ViTKind):
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, hidden, patch, stride=patch, bias=kind.patch_bias)
        self.class_embedding = nn.Parameter(torch.empty(hidden)) if kind.class_token else None
        self.position_embedding = nn.Embedding((image_size // patch) ** 2 + kind.class_token, hidden)

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        if self.class_embedding is not None:
            x = torch.cat((self.class_embedding.expand(x.shape[0], 1, -1), x), dim=1)
        return x + self.position_embedding.weight


class VisionTower(nn.Module):
    """The vision transformer up to the hidden state the VLM takes: embeddings, the optional
    pre-layer norm, ``layers`` encoder layers (the later ones are never built), the optional final norm."""

    def __init__(self, hidden: int, layers: int, heads: int, intermediate: int, act: str, eps: float,
                 image_size: int, patch: int, kind: ViTKind = CLIP_VIT):
        super().__init__()
        self.embeddings = VisionEmbeddings(hidden, image_size, patch, kind)
        self.pre_layrnorm = nn.LayerNorm(hidden, eps=eps) if kind.pre_norm else None  # sic: Hugging Face's name
        self.layers = nn.ModuleList(VisionLayer(hidden, heads, intermediate, act, eps) for _ in range(layers))
        self.post_layernorm = nn.LayerNorm(hidden, eps=eps) if kind.post_norm else None

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.embeddings(pixels)
        x = self.pre_layrnorm(x) if self.pre_layrnorm is not None else x
        for layer in self.layers:
            x = layer(x)
        return self.post_layernorm(x) if self.post_layernorm is not None else x


# --- language model (Llama family) ---------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # Divided by the square root, the pattern ONNX Runtime fuses into SimplifiedLayerNormalization.
        return self.weight * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotary_tables(length: int, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotary position embedding for positions 0..length-1, (length, head_dim).

    Constants like this one are made on the CPU even where modules are built on the meta device.
    """
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device="cpu") / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float32, device="cpu"), inv_freq)  # float32, as in training
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), dim=-1) * sin


class Multiway(nn.Module):
    """mPLUG-Owl2's modality-adaptive module: ``multiway.0`` for text positions, ``multiway.1`` for image
    positions. The image positions are one static run of the sequence, so each branch runs on its own
    positions only (slices and a concatenation, no wasted work)."""

    def __init__(self, make: Callable[[], nn.Module], length: int, image_span: tuple[int, int]):
        super().__init__()
        self.multiway = nn.ModuleList((make(), make()))
        self.length, self.image_span = length, image_span

    def forward(self, x: Tensor) -> Tensor:
        """``x`` holds the last ``x.shape[1]`` positions of the sequence."""
        offset = self.length - x.shape[1]
        start, end = (max(0, bound - offset) for bound in self.image_span)
        pieces = [(self.multiway[0], x[:, :start]), (self.multiway[1], x[:, start:end]), (self.multiway[0], x[:, end:])]
        return torch.cat([branch(part) for branch, part in pieces if part.shape[1]], dim=1)


def _maybe_multiway(make: Callable[[], nn.Module], image_span: tuple[int, int, int] | None) -> nn.Module:
    """``make()``, or a :class:`Multiway` of two for ``image_span`` = (sequence length, image start, image end)."""
    return make() if image_span is None else Multiway(make, image_span[0], image_span[1:])


class DecoderAttention(nn.Module):
    """Causal grouped-query attention with rotary positions. ``bias``: on every projection (Llama's
    ``attention_bias``); ``qkv_bias``: on the query, key and value projections only (Qwen2).
    With ``image_span`` the key and value projections are :class:`Multiway` (mPLUG-Owl2)."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, bias: bool, qkv_bias: bool = False,
                 image_span: tuple[int, int, int] | None = None):
        super().__init__()
        if heads % kv_heads:
            raise ValueError(f"attention heads ({heads}) must be a multiple of key/value heads ({kv_heads})")
        self.heads, self.kv_heads = heads, kv_heads
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=bias or qkv_bias)
        self.k_proj = _maybe_multiway(lambda: nn.Linear(hidden, kv_heads * head_dim, bias=bias or qkv_bias),
                                      image_span)
        self.v_proj = _maybe_multiway(lambda: nn.Linear(hidden, kv_heads * head_dim, bias=bias or qkv_bias),
                                      image_span)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=bias)

    def forward(self, x: Tensor, queries: Tensor, cos: Tensor, sin: Tensor, mask: Tensor) -> Tensor:
        """``queries`` is ``x`` or its last positions; ``cos``/``sin``/``mask`` rows match the queries."""
        q = _rotate(_heads(self.q_proj(queries), self.heads), cos[-queries.shape[1]:], sin[-queries.shape[1]:])
        k = _rotate(_heads(self.k_proj(x), self.kv_heads), cos, sin)
        v = _heads(self.v_proj(x), self.kv_heads)
        groups = self.heads // self.kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        return self.o_proj(_attend(q, k, v, mask))


class GatedMLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int, act: str, bias: bool):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=bias)
        self.up_proj = nn.Linear(hidden, intermediate, bias=bias)
        self.down_proj = nn.Linear(intermediate, hidden, bias=bias)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    """Pre-norm Llama decoder layer (RMSNorm, attention, RMSNorm, gated MLP). With ``image_span``
    (sequence length, image start, image end) the norms and key/value projections are modality-adaptive."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, intermediate: int, act: str,
                 eps: float, attention_bias: bool, mlp_bias: bool, qkv_bias: bool = False,
                 image_span: tuple[int, int, int] | None = None):
        super().__init__()
        self.input_layernorm = _maybe_multiway(lambda: RMSNorm(hidden, eps), image_span)
        self.self_attn = DecoderAttention(hidden, heads, kv_heads, head_dim, attention_bias, qkv_bias, image_span)
        self.post_attention_layernorm = _maybe_multiway(lambda: RMSNorm(hidden, eps), image_span)
        self.mlp = GatedMLP(hidden, intermediate, act, mlp_bias)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, last_only: bool = False) -> Tensor:
        """With ``last_only`` only the last position is computed (its keys and values still see all)."""
        normed = self.input_layernorm(x)
        queries = normed[:, -1:] if last_only else normed
        residual = x[:, -1:] if last_only else x
        x = residual + self.self_attn(normed, queries, cos, sin, mask[-queries.shape[1]:])
        return x + self.mlp(self.post_attention_layernorm(x))


def causal_mask(length: int) -> Tensor:
    """Additive (length, length) mask: 0 on and below the diagonal, the float32 minimum above."""
    return torch.full((length, length), torch.finfo(torch.float32).min, device="cpu").triu(1)
