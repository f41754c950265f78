"""Self-supervised encoders trained on the pool itself (SimCLR/BYOL), random at start.

They take [0, 1] images of the pool's channels and size and standardise them with
pool statistics kept in their state dict (``norm.mean``/``norm.std``)."""

from __future__ import annotations

import torch
from torch import nn

from mlcore.config import EncoderConfig
from mlcore.encoders.spec import EncoderSpec
from mlcore.models.blocks import ResidualAdapter, conv_bn_relu


class Normalize(nn.Module):
    """Per-channel standardisation with statistics of the pool (saved in the state dict)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.full((1, channels, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, channels, 1, 1), 0.25))

    def forward(self, x):
        return (x - self.mean) / self.std

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        # x: (N, C, H, W) float in [0, 1]
        self.mean.copy_(x.mean(dim=(0, 2, 3), keepdim=True))
        self.std.copy_(x.std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-3))


class SmallCNN(nn.Module):
    """Conv-BN-ReLU stages with 2x2 max pooling between them and global average pooling.

    Sized for 28-64 px inputs: for 28 px and widths (32, 64, 128) the last stage runs
    at 7x7."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.norm = Normalize(cfg.in_channels)
        layers, cin = [], cfg.in_channels
        for i, w in enumerate(cfg.widths):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            layers.append(conv_bn_relu(cin, w))
            cin = w
        self.features = nn.Sequential(*layers)
        # adapters live beside the stages so that the stage keys are the same with and
        # without them and a checkpoint without adapters loads unchanged
        self.adapters = nn.ModuleList(ResidualAdapter(w, cfg.adapter_dim) for w in cfg.widths) \
            if cfg.adapters else None
        self.out_dim = cin

    def forward(self, x):  # (B, C, H, W) -> (B, D)
        x = self.norm(x)
        stage = 0
        for layer in self.features:
            x = layer(x)
            if self.adapters is not None and not isinstance(layer, nn.MaxPool2d):
                x = self.adapters[stage](x)
                stage += 1
        return x.mean(dim=(2, 3))


class ResNet18Small(nn.Module):
    """torchvision ResNet-18 with a 3x3 stride-1 stem and no max pool (CIFAR-style),
    for RGB images of 32 px and more. Randomly initialised: weights come from
    pretraining or from a user-supplied checkpoint, never from a hub."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        net.conv1 = nn.Conv2d(cfg.in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.norm = Normalize(cfg.in_channels)
        self.net = net
        self.adapters = nn.ModuleList(ResidualAdapter(c, cfg.adapter_dim) for c in (64, 128, 256, 512)) \
            if cfg.adapters else None
        self.out_dim = 512

    def forward(self, x):  # (B, C, H, W) -> (B, 512)
        n = self.net
        x = n.relu(n.bn1(n.conv1(self.norm(x))))
        for i, layer in enumerate((n.layer1, n.layer2, n.layer3, n.layer4)):
            x = layer(x)
            if self.adapters is not None:
                x = self.adapters[i](x)
        return x.mean(dim=(2, 3))



# EncoderConfig.arch -> class; "resnet18" here is the CIFAR-style ResNet18Small (the
# registry calls it "resnet18_small"; its "resnet18" is torchvision's ImageNet model)
ENCODERS = {"small_cnn": SmallCNN, "resnet18": ResNet18Small}


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    return ENCODERS[cfg.arch](cfg)


def _arch(legacy: str):
    def make(cfg: EncoderConfig | None = None, **overrides) -> nn.Module:
        # cfg wins when given; otherwise EncoderConfig defaults with ``overrides``
        if cfg is None:
            cfg = EncoderConfig(**{**overrides, "arch": legacy})
        return ENCODERS[legacy](cfg)
    return make


SPECS = (
    EncoderSpec("small_cnn", "selfsup", out_dim=128, arch=_arch("small_cnn"), input_size=None,
                channels=None, mean=None, std=None,
                description="Conv-BN-ReLU stages for 28-64 px; out_dim = cfg.widths[-1] (128 by default)"),
    EncoderSpec("resnet18_small", "selfsup", out_dim=512, arch=_arch("resnet18"), input_size=None,
                channels=None, mean=None, std=None,
                description="ResNet-18 with a 3x3 stride-1 stem and no max pool, for 32 px and more"),
)
