"""BYOL regression loss (Grill et al. 2020, eq. 2), symmetrised over the two views."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """p1, p2: (B, P) online predictions for views 1 and 2; t1, t2: (B, P) target
    projections (no gradient). L = ||p̄ - t̄||² = 2 - 2 cos(p, t), with p1 paired with
    the target of view 2 and vice versa; mean over the batch of the sum of both terms."""
    def one(p, t):
        return 2 - 2 * (F.normalize(p.float(), dim=1) * F.normalize(t.detach().float(), dim=1)).sum(1)

    return (one(p1, t2) + one(p2, t1)).mean()
