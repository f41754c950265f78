"""Diversity-aware batch selection among the top-scoring candidates."""

from __future__ import annotations

import numpy as np

from mlcore.acquisition.cluster import kmeans


def select_diverse(emb: np.ndarray, scores: np.ndarray, n: int, candidates: int,
                   seed: int = 0) -> np.ndarray:
    """Pick n distinct items that cover the embedding space among the ``candidates``
    best-scored ones: k-means the candidates into n clusters and take each cluster's
    best item (as in cluster-margin, Citovsky et al. 2021). Neighbouring items have
    nearly the same score, so top-n alone would ask n near-duplicates.

    emb (N, D), scores (N,) with -inf for excluded items. Returns (n,) indices ordered
    by decreasing score, never duplicated."""
    valid = np.where(np.isfinite(scores))[0]
    n = min(n, len(valid))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    m = min(len(valid), max(n, candidates))
    # 1. top-m candidates (stable order so ties are resolved by index, deterministic)
    order = valid[np.argsort(-scores[valid], kind="stable")][:m]
    if m == n:
        return order
    # 2. one item per cluster
    _, assign = kmeans(emb[order], n, seed=seed, nredo=5)
    picked = []
    for c in np.unique(assign):
        members = order[assign == c]  # already sorted by score
        picked.append(members[0])
    # 3. empty clusters: fill with the best remaining candidates
    if len(picked) < n:
        taken = set(picked)
        picked += [i for i in order if i not in taken][: n - len(picked)]
    picked = np.asarray(picked, dtype=np.int64)
    return picked[np.argsort(-scores[picked], kind="stable")]
