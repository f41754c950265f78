"""Small building blocks shared by encoders and heads."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def mlp_block(din: int, dout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(din, dout, bias=False), nn.BatchNorm1d(dout), nn.ReLU(inplace=True))


class ResidualAdapter(nn.Module):
    """Bottleneck 1x1 conv adapter x + up(relu(down(x))) (Rebuffi et al. 2017).

    ``up`` starts at zero so a freshly added adapter is exactly the identity and a
    transferred encoder behaves as it did before training starts."""

    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.down = nn.Conv2d(channels, bottleneck, 1)
        self.up = nn.Conv2d(bottleneck, channels, 1)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):  # (B, C, H, W) -> (B, C, H, W)
        return x + self.up(torch.relu(self.down(x)))
