"""Per-sample weighted cross-entropy with soft targets and label smoothing."""

from __future__ import annotations

import torch


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                       weights: torch.Tensor | None = None,
                       smoothing: float = 0.0) -> torch.Tensor:
    """logits (B, C); targets (B,) int class ids or (B, C) distributions; weights (B,).

    Smoothing mixes the target with the uniform distribution: (1-e) y + e/C. Returns
    sum_i w_i CE_i / B, so weights in [0, 1] (LP certainties) shrink the loss instead
    of being renormalised away (Iscen et al. 2019, eq. 14)."""
    c = logits.shape[1]
    if targets.ndim == 1:
        targets = torch.nn.functional.one_hot(targets.long(), c).to(logits.dtype)
    targets = targets.to(logits.dtype)
    if smoothing > 0:
        targets = (1 - smoothing) * targets + smoothing / c
    ce = -(targets * logits.float().log_softmax(dim=1)).sum(dim=1)  # (B,)
    if weights is not None:
        ce = ce * weights
    return ce.sum() / max(len(ce), 1)
