"""Quantization-step generator for perceptual QP maps (Yang & Bajić, PCS 2025); see ``QPMAP_MODEL_CARD.md``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vqa_rt.export.models.spec import ModelSpec

BLOCK = 16  # output stride: one quantization step per 16x16 block
_STAGES = 4  # stride-2 convolutions, 2**4 == BLOCK


@dataclass(frozen=True)
class QPMapConfig:
    """Architecture hyper-parameters of the quantization-step generator."""

    widths: tuple[int, ...] = (16, 32, 48, 64)  # channels after each stride-2 conv
    blocks: tuple[int, ...] = (0, 1, 1, 2)  # residual blocks after each stride-2 conv

    def to_dict(self) -> dict:
        return asdict(self)


class ResidualBlock(nn.Module):
    """conv 3x3, ReLU, conv 3x3, plus the input, ReLU (no normalisation layers)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class QPMapModel(nn.Module):
    """RGB frame -> positive quantization step per 16x16 block.

    Input ``(N, 3, H, W)`` RGB in [0, 1], any H and W. The frame is padded on the
    bottom and right to a multiple of 16 by repeating its edge samples (as encoders
    pad a picture to whole coding blocks), so the output ``(N, 1, ceil(H/16),
    ceil(W/16))`` has exactly one value per block of the frame, partial edge blocks
    included. Softplus makes every value positive.
    """

    def __init__(self, config: QPMapConfig = QPMapConfig()):
        super().__init__()
        if len(config.widths) != _STAGES or len(config.blocks) != _STAGES:
            raise ValueError(f"widths and blocks need {_STAGES} entries each (one per stride-2 stage)")
        self.config = config
        layers: list[nn.Module] = []
        in_channels = 3
        for width, count in zip(config.widths, config.blocks):
            layers += [nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            layers += [ResidualBlock(width) for _ in range(count)]
            in_channels = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(in_channels, 1, 1)
        self.apply(_he_init)

    def forward(self, rgb: Tensor) -> Tensor:
        height, width = rgb.shape[-2:]
        padded = F.pad(rgb, (0, (-width) % BLOCK, 0, (-height) % BLOCK), mode="replicate")
        return F.softplus(self.head(self.body(padded)))


def _he_init(module: nn.Module) -> None:
    """He initialisation, so an untrained model's map varies with its input."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        nn.init.zeros_(module.bias)


def _example_inputs(config: QPMapConfig, batch: int, height: int, width: int) -> tuple[Tensor]:
    return (torch.rand(batch, 3, height, width),)


SPEC = ModelSpec(
    kind="qpmap",
    description="quantization-step generator for perceptual QP maps (residual blocks + stride-2 convs, 1/16 output)",
    config_cls=QPMapConfig,
    build=QPMapModel,
    input_names=("rgb",),
    output_names=("qs",),
    dynamic_axes={"rgb": {0: "batch", 2: "height", 3: "width"}},
    example_inputs=_example_inputs,
    validation_sizes=((256, 384), (180, 328)),  # the second is not a multiple of 16
    min_size=BLOCK,
    rtol=1e-4,
    preprocess={
        "layout": "NCHW",
        "color": "RGB",
        "value_range": [0.0, 1.0],
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],
        "block_size": BLOCK,
        "padding": "replicate to a multiple of block_size (bottom/right); output (N, 1, ceil(H/16), ceil(W/16))",
    },
    score_scale={"name": "quantization step", "min": 0.0, "max": None, "higher_is_better": None},
    shipped_weights="qpmap.safetensors",
)
