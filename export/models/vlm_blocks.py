"""Building blocks of a LLaVA-style VLM: a CLIP-style ViT and Llama-family decoder layers.

Parameter names follow Hugging Face's CLIP and Llama modules (``self_attn.q_proj``,
``mlp.gate_proj``, ``input_layernorm``, ...) so that checkpoint weights map by name.
Attention is written as plain matrix products and a softmax (no fused kernel), which
exports to standard ONNX ``MatMul``/``Softmax`` nodes that quantize and run anywhere.
"""

from __future__ import annotations

import math

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


class VisionEmbeddings(nn.Module):
    """Patches (a stride-``patch`` convolution without bias), a class token, learned positions."""

    def __init__(self, hidden: int, image_size: int, patch: int):
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, hidden, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(hidden))
        self.position_embedding = nn.Embedding((image_size // patch) ** 2 + 1, hidden)

    def forward(self, pixels: Tensor) -> Tensor:
        patches = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(patches.shape[0], 1, -1)
        return torch.cat((cls, patches), dim=1) + self.position_embedding.weight


class VisionTower(nn.Module):
    """CLIP's vision transformer up to the hidden state LLaVA takes: embeddings, the
    pre-layer norm and ``layers`` encoder layers (the later ones are never built)."""

    def __init__(self, hidden: int, layers: int, heads: int, intermediate: int, act: str, eps: float,
                 image_size: int, patch: int):
        super().__init__()
        self.embeddings = VisionEmbeddings(hidden, image_size, patch)
        self.pre_layrnorm = nn.LayerNorm(hidden, eps=eps)  # sic: Hugging Face's name
        self.layers = nn.ModuleList(VisionLayer(hidden, heads, intermediate, act, eps) for _ in range(layers))

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.pre_layrnorm(self.embeddings(pixels))
        for layer in self.layers:
            x = layer(x)
        return x


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


class DecoderAttention(nn.Module):
    """Causal grouped-query attention with rotary positions."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, bias: bool):
        super().__init__()
        if heads % kv_heads:
            raise ValueError(f"attention heads ({heads}) must be a multiple of key/value heads ({kv_heads})")
        self.heads, self.kv_heads = heads, kv_heads
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=bias)
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
    """Pre-norm Llama decoder layer (RMSNorm, attention, RMSNorm, gated MLP)."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, intermediate: int, act: str,
                 eps: float, attention_bias: bool, mlp_bias: bool):
        super().__init__()
        self.input_layernorm = RMSNorm(hidden, eps)
        self.self_attn = DecoderAttention(hidden, heads, kv_heads, head_dim, attention_bias)
        self.post_attention_layernorm = RMSNorm(hidden, eps)
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
