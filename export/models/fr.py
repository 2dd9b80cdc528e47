"""Full-reference quality model (AVSVQA FR scheme); see ``FR_MODEL_CARD.md``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from vqa_rt.export.models.deform_conv import DeformConv2d
from vqa_rt.export.models.resnet import ResNetTrunk
from vqa_rt.export.models.spec import ModelSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DCR_MIN, DCR_MAX = 1.0, 7.0


@dataclass(frozen=True)
class FRConfig:
    """Architecture hyper-parameters of the FR model."""

    trunk_widths: tuple[int, ...] = (64, 128, 256, 512)
    trunk_blocks: tuple[int, ...] = (2, 2, 2, 2)
    fusion_stages: tuple[int, ...] = (2, 3, 4)
    fusion_channels: int = 64
    offset_groups: int = 2
    temporal_channels: tuple[int, ...] = (16, 32, 64)
    head_hidden: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


class DeformableFusion(nn.Module):
    """Fuses reference and distorted features of one scale with a modulated deformable conv.

    Offsets and mask are predicted from both feature maps; the deformable conv
    samples the concatenated maps at those offsets. Returns the globally pooled
    fused features, shape (N, fusion_channels).
    """

    def __init__(self, channels: int, fusion_channels: int, offset_groups: int):
        super().__init__()
        self.deform = DeformConv2d(2 * channels, fusion_channels, 3, padding=1, offset_group=offset_groups)
        self.predictor = nn.Conv2d(2 * channels, self.deform.offset_channels + self.deform.mask_channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def init_predictor(self) -> None:
        """Small random offsets (about a pixel) rather than zeros, so that even an
        untrained model exercises the deformable sampling end to end."""
        fan_in = self.predictor.weight[0].numel()
        nn.init.normal_(self.predictor.weight, std=0.5 / fan_in**0.5)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, ref: Tensor, dist: Tensor) -> Tensor:
        both = torch.cat((ref, dist), dim=1)
        prediction = self.predictor(both)
        offset = prediction[:, : self.deform.offset_channels]
        mask = torch.sigmoid(prediction[:, self.deform.offset_channels :])
        return self.relu(self.deform(both, offset, mask)).mean(dim=(2, 3))


class TemporalBranch(nn.Module):
    """Strided convolutions over the frame differences of reference and distorted."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        layers, in_channels = [], 6
        for width in channels:
            layers += [nn.Conv2d(in_channels, width, 3, 2, 1), nn.ReLU(inplace=True)]
            in_channels = width
        self.convs = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, ref_diff: Tensor, dist_diff: Tensor) -> Tensor:
        return self.convs(torch.cat((ref_diff, dist_diff), dim=1)).mean(dim=(2, 3))


def _mlp(in_features: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))


def _he_init(module: nn.Module) -> None:
    """He initialisation (as torchvision's ResNet), so an untrained model's outputs vary with its inputs."""
    if isinstance(module, (nn.Conv2d, DeformConv2d)):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        nn.init.zeros_(module.bias)


def _to_dcr(logit: Tensor) -> Tensor:
    return DCR_MIN + (DCR_MAX - DCR_MIN) * torch.sigmoid(logit)


class FRModel(nn.Module):
    """Per-frame full-reference quality on the 7-level DCR scale (1..7).

    Inputs are normalised RGB frames (N, 3, H, W): the reference and distorted
    frames and their predecessors in the source. Returns ``(score, spatial,
    temporal)``, each of shape (N,) and in [1, 7].
    """

    def __init__(self, config: FRConfig = FRConfig()):
        super().__init__()
        if any(not 1 <= stage <= len(config.trunk_widths) for stage in config.fusion_stages):
            raise ValueError(f"fusion_stages must lie in 1..{len(config.trunk_widths)}")
        self.config = config
        self.trunk = ResNetTrunk(config.trunk_widths, config.trunk_blocks)
        self.fusions = nn.ModuleList(
            DeformableFusion(config.trunk_widths[stage - 1], config.fusion_channels, config.offset_groups)
            for stage in config.fusion_stages
        )
        self.spatial_head = _mlp(config.fusion_channels * len(config.fusion_stages), config.head_hidden)
        self.temporal = TemporalBranch(config.temporal_channels)
        self.temporal_head = _mlp(self.temporal.out_channels, config.head_hidden)
        self.combine = nn.Linear(2, 1)
        self.apply(_he_init)
        for fusion in self.fusions:
            fusion.init_predictor()

    def forward(self, ref: Tensor, dist: Tensor, ref_prev: Tensor, dist_prev: Tensor):
        batch = ref.shape[0]
        features = self.trunk(torch.cat((ref, dist), dim=0))
        pooled = [
            fusion(features[stage - 1][:batch], features[stage - 1][batch:])
            for stage, fusion in zip(self.config.fusion_stages, self.fusions)
        ]
        spatial = self.spatial_head(torch.cat(pooled, dim=1))
        temporal = self.temporal_head(self.temporal(ref - ref_prev, dist - dist_prev))
        score = self.combine(torch.cat((spatial, temporal), dim=1))
        return _to_dcr(score).squeeze(1), _to_dcr(spatial).squeeze(1), _to_dcr(temporal).squeeze(1)


def _example_inputs(config: FRConfig, batch: int, height: int, width: int) -> tuple[Tensor, ...]:
    return tuple(torch.randn(batch, 3, height, width) for _ in range(4))


_FRAME_AXES = {0: "batch", 2: "height", 3: "width"}

SPEC = ModelSpec(
    kind="fr",
    description="full-reference quality (ResNet-18 + deformable fusion + temporal branch)",
    config_cls=FRConfig,
    build=FRModel,
    input_names=("ref", "dist", "ref_prev", "dist_prev"),
    output_names=("score", "spatial", "temporal"),
    dynamic_axes={name: dict(_FRAME_AXES) for name in ("ref", "dist", "ref_prev", "dist_prev")},
    example_inputs=_example_inputs,
    validation_sizes=((224, 320), (200, 296)),
    min_size=64,
    rtol=1e-4,
    preprocess={
        "layout": "NCHW",
        "color": "RGB",
        "value_range": [0.0, 1.0],
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "temporal_inputs": "ref_prev/dist_prev are the source frames preceding ref/dist (the frame itself for the "
                           "first frame)",
    },
    score_scale={"name": "DCR", "min": DCR_MIN, "max": DCR_MAX, "higher_is_better": True},
    min_opset=19,
    min_opset_reason="its DeformConv op is in opset 19 and later",
    shipped_weights="fr.safetensors",
)
