"""Few-shot prototypes: class means in embedding space, cosine scores with a
temperature (Snell et al. 2017 with cosine similarity); usable from one label per class."""

from __future__ import annotations

import numpy as np


def prototypes(emb: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """emb (N, D) L2-normalised; targets (N, C) label distributions (zero rows for
    unlabelled). Returns (C, D) unit prototypes; classes without labels get a zero row."""
    mass = targets.sum(0)  # (C,)
    protos = targets.T @ emb / np.maximum(mass[:, None], 1e-12)  # (C, D)
    norm = np.linalg.norm(protos, axis=1, keepdims=True)
    return (protos / np.maximum(norm, 1e-12)).astype(np.float32)


def prototype_probs(emb: np.ndarray, protos: np.ndarray, temperature: float = 0.1) -> np.ndarray:
    """softmax(cos(emb, proto_c) / T) over classes that have a prototype. (N, C)."""
    logits = emb @ protos.T / temperature  # (N, C)
    present = np.linalg.norm(protos, axis=1) > 0
    logits = np.where(present[None, :], logits, -np.inf)
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def fit_temperature(emb: np.ndarray, targets: np.ndarray,
                    grid=np.geomspace(0.01, 1.0, 25)) -> float | None:
    """Calibrate T by leave-one-out NLL of the labelled items (each item scored against
    prototypes computed without it). None when no class has two labels."""
    lab = np.where(targets.sum(1) > 0)[0]
    if len(lab) < 2 or (targets[lab].sum(0) >= 2).sum() == 0:
        return None
    e, t = emb[lab], targets[lab]
    sums = t.T @ e  # (C, D)
    mass = t.sum(0)  # (C,)
    # leave-one-out prototype of item i's own class mass: subtract its contribution
    best, best_nll = None, np.inf
    nll_items = []
    for temp in grid:
        nll = 0.0
        for i in range(len(lab)):
            s = sums - t[i][:, None] * e[i][None, :]
            m = mass - t[i]
            pr = s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
            ok = m > 1e-9
            if not (ok & (t[i] > 0)).any():
                continue
            logit = np.where(ok, pr @ e[i] / temp, -np.inf)
            logit -= logit.max()
            logp = logit - np.log(np.exp(logit).sum())
            nll -= (t[i] * np.where(ok, logp, 0)).sum()
        nll_items.append(nll)
        if nll < best_nll:
            best, best_nll = float(temp), nll
    return best
