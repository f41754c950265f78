"""Heads on top of encoder features (B, D)."""

from __future__ import annotations

import torch
from torch import nn

from mlcore.models.blocks import mlp_block


class ProjectionHead(nn.Module):
    """SimCLR/BYOL projector g(h): MLP block then a linear layer (Chen et al. 2020)."""

    def __init__(self, din: int, hidden: int, dout: int):
        super().__init__()
        self.net = nn.Sequential(mlp_block(din, hidden), nn.Linear(hidden, dout))

    def forward(self, h):  # (B, D) -> (B, P)
        return self.net(h)


class PredictorHead(ProjectionHead):
    """BYOL's online predictor q(z): same shape as the projector."""


class ClassifierHead(nn.Module):
    """Dropout + linear classifier. Dropout stays stochastic under ``mc=True`` so T
    forward passes give MC-dropout samples for BALD (Gal et al. 2017)."""

    def __init__(self, din: int, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(din, num_classes)

    def forward(self, h, mc: bool = False):  # (B, D) -> (B, C) logits
        if mc:
            h = nn.functional.dropout(h, self.dropout.p, training=True)
        else:
            h = self.dropout(h)
        return self.fc(h)

    @torch.no_grad()
    def mc_probs(self, h: torch.Tensor, samples: int) -> torch.Tensor:
        # (T, B, C) softmax probabilities under T dropout masks
        return torch.stack([self.forward(h, mc=True).softmax(-1) for _ in range(samples)])
