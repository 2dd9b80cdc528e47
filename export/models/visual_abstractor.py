"""mPLUG-Owl2's visual abstractor: learned queries that summarise a ViT's output into a few tokens.

``Q`` learned queries pass through a few layers in which they attend over themselves and the
image (keys with sin-cos positions added, values without), each layer followed by a SwiGLU MLP
with a LayerNorm inside; the result is projected to the language model's width and a learned
end-of-image token is appended: ``Q + 1`` tokens per image (65 for Q-Align / OneAlign).
Parameter names are the checkpoint's (``visual_abstractor.*``), so weights map by name.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vqa_rt.export.models.vlm_blocks import _attend, _heads

CHECKPOINT_NORM_EPS = 1e-5  # norm1, normk and norm2 are built with LayerNorm's default eps upstream


def sincos_table(dim: int, positions: np.ndarray) -> np.ndarray:
    """MAE's 1-D sin-cos table: (len(positions), dim), sines then cosines, computed in float32 as upstream."""
    omega = 1.0 / np.float32(10000) ** (np.arange(dim // 2, dtype=np.float32) / np.float32(dim / 2))
    angles = np.einsum("m,d->md", positions.reshape(-1).astype(np.float32), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def image_position_table(dim: int, grid: int) -> np.ndarray:
    """MAE's 2-D sin-cos table for a ``grid`` x ``grid`` patch grid, after a zero row for the class token."""
    columns, rows = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))
    table = np.concatenate([sincos_table(dim // 2, columns), sincos_table(dim // 2, rows)], axis=1)
    return np.concatenate([np.zeros((1, dim), np.float32), table])


class AbstractorAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, queries: int, image_tokens: int):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.register_buffer("q_pos_embed", torch.zeros(queries, hidden))
        self.register_buffer("k_pos_embed", torch.zeros(image_tokens, hidden))

    def forward(self, queries: Tensor, context: Tensor) -> Tensor:
        """``context`` is the normalised queries followed by the normalised image tokens."""
        positions = torch.cat((self.q_pos_embed, self.k_pos_embed))
        q = _heads(self.query(queries + self.q_pos_embed), self.heads)
        k = _heads(self.key(context + positions), self.heads)
        return _attend(q, k, _heads(self.value(context), self.heads), None)


class AbstractorMLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int, eps: float):
        super().__init__()
        self.w1, self.w3 = nn.Linear(hidden, intermediate), nn.Linear(hidden, intermediate)
        self.ffn_ln = nn.LayerNorm(intermediate, eps=eps)
        self.w2 = nn.Linear(intermediate, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(self.ffn_ln(F.silu(self.w1(x)) * self.w3(x)))


class AbstractorOutput(nn.Module):
    def __init__(self, hidden: int, intermediate: int, eps: float):
        super().__init__()
        self.out_proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=CHECKPOINT_NORM_EPS)
        self.mlp = AbstractorMLP(hidden, intermediate, eps)

    def forward(self, context: Tensor, residual: Tensor) -> Tensor:
        x = residual + self.out_proj(context)
        return x + self.mlp(self.norm2(x))


class AbstractorCrossAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float, queries: int, image_tokens: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, eps=CHECKPOINT_NORM_EPS)
        self.normk = nn.LayerNorm(hidden, eps=CHECKPOINT_NORM_EPS)
        self.attention = AbstractorAttention(hidden, heads, queries, image_tokens)
        self.output = AbstractorOutput(hidden, intermediate, eps)

    def forward(self, queries: Tensor, image: Tensor) -> Tensor:
        queries = self.norm1(queries)  # the residual starts from the normalised queries, as upstream
        context = torch.cat((queries, self.normk(image)), dim=1)
        return self.output(self.attention(queries, context), queries)


class AbstractorLayer(nn.Module):
    def __init__(self, *args):
        super().__init__()
        self.crossattention = AbstractorCrossAttention(*args)


class AbstractorEncoder(nn.Module):
    def __init__(self, layers: int, *args):
        super().__init__()
        self.layers = nn.ModuleList(AbstractorLayer(*args) for _ in range(layers))


class VisualAbstractor(nn.Module):
    """ViT output ``(N, image_tokens, hidden)`` -> ``(N, queries + 1, text_hidden)``. The position
    tables are buffers loaded from the checkpoint; :meth:`reset_positions` computes them."""

    def __init__(self, hidden: int, layers: int, heads: int, intermediate: int, eps: float, queries: int,
                 image_tokens: int, text_hidden: int):
        super().__init__()
        self.query_embeds = nn.Parameter(torch.zeros(1, queries, hidden))
        self.encoder = AbstractorEncoder(layers, hidden, heads, intermediate, eps, queries, image_tokens)
        self.visual_fc = nn.Linear(hidden, text_hidden)
        self.vit_eos = nn.Parameter(torch.zeros(1, 1, text_hidden))

    def reset_positions(self, grid: int) -> None:
        """Set every layer's position tables to upstream's sin-cos tables for a ``grid`` x ``grid`` ViT."""
        hidden, queries = self.query_embeds.shape[2], self.query_embeds.shape[1]
        q_table = torch.from_numpy(sincos_table(hidden, np.arange(queries, dtype=np.float32)))
        k_table = torch.from_numpy(image_position_table(hidden, grid))
        for layer in self.encoder.layers:
            layer.crossattention.attention.q_pos_embed.copy_(q_table)
            layer.crossattention.attention.k_pos_embed.copy_(k_table)

    def forward(self, image: Tensor) -> Tensor:
        x = self.query_embeds.expand(image.shape[0], -1, -1)
        for layer in self.encoder.layers:
            x = layer.crossattention(x, image)
        x = self.visual_fc(x)
        return torch.cat((x, self.vit_eos.expand(x.shape[0], -1, -1)), dim=1)
