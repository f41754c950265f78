"""FixMatch consistency loss (Sohn et al. 2020, eq. 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fixmatch_loss(logits_weak: torch.Tensor, logits_strong: torch.Tensor,
                  threshold: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """logits_weak, logits_strong: (muB, C) for the weak and strong view of the same
    unlabelled images. l_u = 1/(muB) sum 1(max q >= tau) H(argmax q, p(strong)), with
    q = softmax(weak) treated as a constant. Returns (loss, mask (muB,))."""
    q = logits_weak.detach().float().softmax(dim=1)
    conf, pseudo = q.max(dim=1)
    mask = (conf >= threshold).float()
    ce = F.cross_entropy(logits_strong.float(), pseudo, reduction="none")
    return (ce * mask).mean(), mask
