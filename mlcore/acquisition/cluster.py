"""k-means and typicality, used by diversity selection and cold start."""

from __future__ import annotations

import numpy as np


def _sq_dists(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    # (N, K) squared Euclidean distances
    return np.maximum((x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :], 0)


def kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator, trials: int | None = None) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; ``trials`` candidates per
    step as in scikit-learn): centres far from the chosen ones are likely, so
    well-separated groups each get a centre, which random initialisation misses."""
    n = len(x)
    trials = trials or 2 + int(np.log(k))
    centers = [int(rng.integers(n))]
    d2 = _sq_dists(x, x[centers])[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than k: any unused item
            unused = np.setdiff1d(np.arange(n), centers)
            centers.append(int(unused[0]))
            continue
        cand = np.searchsorted(np.cumsum(d2), rng.random(trials) * total).clip(max=n - 1)
        new_d2 = np.minimum(d2[None, :], _sq_dists(x, x[cand]).T)  # (trials, N)
        best = int(np.argmin(new_d2.sum(1)))
        centers.append(int(cand[best]))
        d2 = new_d2[best]
    return x[centers].copy()


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 30, nredo: int = 1):
    """Lloyd's k-means from k-means++ seeds, best of ``nredo`` by inertia.
    Returns (centroids (k, D), assignment (N,)); k is capped at N."""
    x = np.asarray(x, dtype=np.float64)
    k = max(1, min(k, len(x)))
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(nredo):
        c = kmeans_pp(x, k, rng)
        for _ in range(iters):
            assign = _sq_dists(x, c).argmin(1)
            new = np.stack([x[assign == j].mean(0) if (assign == j).any() else c[j] for j in range(k)])
            if np.allclose(new, c):
                break
            c = new
        d = _sq_dists(x, c)
        assign = d.argmin(1)
        inertia = d[np.arange(len(x)), assign].sum()
        if best is None or inertia < best[0]:
            best = (inertia, c, assign)
    return best[1].astype(np.float32), best[2].astype(np.int64)


def typicality(sims: np.ndarray, k: int = 20) -> np.ndarray:
    """TypiClust typicality (Hacohen et al. 2022, eq. 2): inverse mean distance to the k
    nearest neighbours. sims (N, >=k) cosine similarities of unit vectors, so the
    Euclidean distance is sqrt(2 - 2 s)."""
    if sims.shape[1] == 0:  # a single-item pool has no neighbours
        return np.ones(len(sims))
    d = np.sqrt(np.clip(2 - 2 * sims[:, :k], 0, None))
    return 1.0 / (d.mean(1) + 1e-8)
