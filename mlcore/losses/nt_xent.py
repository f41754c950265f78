"""NT-Xent, the SimCLR contrastive loss (Chen et al. 2020, eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """z1, z2: (B, P) projections of two views of the same B images.

    l(i, j) = -log exp(sim(z_i, z_j)/t) / sum_{k != i} exp(sim(z_i, z_k)/t), averaged
    over all 2B anchors; sim is cosine similarity."""
    b = len(z1)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2B, P)
    sim = z @ z.t() / temperature  # (2B, 2B)
    sim.fill_diagonal_(float("-inf"))  # k != i
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)
