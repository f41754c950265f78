"""Strategies that look at the pool's geometry besides the probabilities: the kNN graph
the propagation runs on, or the embeddings. Candidates for ``auto`` (measured with
``python -m mlcore.bench_acquisition``); they are not the app's strategy choices.

A strategy has either ``score(inputs)`` (then ``rank`` picks a diverse batch among the
best-scored items, as for the plain scores) or ``select(inputs, n)`` (it builds the whole
batch itself: BADGE, coverage)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mlcore.acquisition.cluster import typicality
from mlcore.acquisition.scores import ScoreInputs, margin
from mlcore.config import PropagationConfig
from mlcore.propagation import Graph, label_matrix, propagate


def knn_density(graph: Graph) -> np.ndarray:
    """(N,) typicality on the graph's neighbour lists (inverse mean distance to the kNN,
    Hacohen et al. 2022), scaled so the densest item has 1."""
    typ = typicality(graph.sims, graph.sims.shape[1])
    return typ / max(float(typ.max()), 1e-12)


class DensityMargin:
    """Information density (Settles & Craven 2008, eq. 1): uncertainty x density^beta, with
    margin uncertainty 1 - (p_top1 - p_top2) and the kNN density above instead of the mean
    similarity to the whole pool, so an uncertain outlier waits behind an uncertain item
    that stands for many others."""
    candidates_factor = None
    beta = 1.0

    def score(self, inputs: ScoreInputs) -> np.ndarray:
        return (1.0 - margin(inputs.probs)) * knn_density(inputs.knn) ** self.beta


def ball_matrix(graph: Graph, quantile: float = 0.5) -> sp.csr_matrix:
    """(N, N) 0/1 balls of radius delta around every item, itself included: i and j share
    a ball when one is in the other's neighbour list with cosine similarity at least the
    ``quantile`` of all the graph's neighbour similarities (ProbCover's delta-ball graph,
    Yehuda et al. 2022, restricted to the kNN lists)."""
    n, k = graph.idx.shape
    tau = float(np.quantile(graph.sims, quantile)) if graph.sims.size else 1.0
    keep = (graph.sims >= tau) & (graph.idx >= 0)
    rows = np.repeat(np.arange(n), k)[keep.ravel()]
    cols = graph.idx.ravel()[keep.ravel()]
    a = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))
    a = ((a + a.T + sp.eye(n, format="csr", dtype=np.float32)) > 0).astype(np.float32)
    return a.tocsr()


class Coverage:
    """ProbCover (Yehuda et al. 2022), greedy max coverage: each pick is the centre of the
    ball holding the most items no labelled item's ball covers yet; ``weighted`` counts
    each uncovered item by its margin uncertainty 1 - (p_top1 - p_top2) instead of 1, so
    dense *and* doubtful regions go first."""
    weighted = False
    quantile = 0.5

    def select(self, inputs: ScoreInputs, n: int) -> np.ndarray:
        a = ball_matrix(inputs.knn, self.quantile)  # (N, N)
        free = inputs.unlabelled.copy()
        n = min(n, int(free.sum()))
        # 1. what the labelled items' balls cover already
        covered = a @ (~free).astype(np.float32) > 0
        w = (1.0 - margin(inputs.probs)) if self.weighted else np.ones(len(free))
        w = np.where(covered, 0.0, w)  # (N,)
        picks = []
        for _ in range(n):
            # 2. gain of every ball; the best unlabelled centre covers its ball
            gain = np.where(free, a @ w, -np.inf)
            j = int(np.argmax(gain))
            picks.append(j)
            free[j] = False
            w[a.indices[a.indptr[j]:a.indptr[j + 1]]] = 0.0
        return np.asarray(picks, dtype=np.int64)


class CoverageMargin(Coverage):
    weighted = True


def badge_select(probs: np.ndarray, emb: np.ndarray, free: np.ndarray, n: int,
                 rng: np.random.Generator) -> np.ndarray:
    """BADGE (Ash et al. 2020): k-means++ seeding over gradient embeddings
    g_i = (p_i - onehot(argmax p_i)) (x) x_i of a linear softmax head on the embeddings.
    The first pick has the largest ||g||; every next one is drawn with probability
    proportional to its squared distance to the nearest pick. ||g_i - g_j||^2 =
    |a_i|^2|x_i|^2 + |a_j|^2|x_j|^2 - 2 (a_i.a_j)(x_i.x_j), so the (N, C x D) gradient
    matrix is never formed. free (N,) bool: the items that may be picked."""
    a = probs.astype(np.float64).copy()  # (N, C)
    a[np.arange(len(a)), a.argmax(1)] -= 1.0
    x = emb.astype(np.float64)  # (N, D)
    sq = (a * a).sum(1) * (x * x).sum(1)  # (N,) ||g||^2
    cand = np.where(free)[0]
    n = min(n, len(cand))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    picks = [int(cand[np.argmax(sq[cand])])]
    d2 = np.full(len(a), np.inf)
    for _ in range(1, n):
        j = picks[-1]
        d2 = np.minimum(d2, np.maximum(sq + sq[j] - 2 * (a @ a[j]) * (x @ x[j]), 0.0))
        d2[picks] = 0.0
        w = np.where(free, d2, 0.0)
        total = w.sum()
        if total <= 0:  # every free item coincides with a pick: largest norm left
            rest = cand[~np.isin(cand, picks)]
            picks.append(int(rest[np.argmax(sq[rest])]))
            continue
        picks.append(int(np.searchsorted(np.cumsum(w), rng.random() * total).clip(max=len(a) - 1)))
    return np.asarray(picks, dtype=np.int64)


class BADGE:
    def select(self, inputs: ScoreInputs, n: int) -> np.ndarray:
        if inputs.emb is None:
            raise ValueError("BADGE needs the embeddings")
        return badge_select(inputs.probs, inputs.emb, inputs.unlabelled, n, inputs.rng)


def expected_risk(Z: np.ndarray, G: np.ndarray, counts: np.ndarray, q: np.ndarray,
                  free: np.ndarray, balanced: bool, cand: np.ndarray) -> np.ndarray:
    """Expected pool risk sum_i (1 - max_c p'_ic) after labelling each candidate, over the
    answer c ~ q (Zhu, Lafferty & Ghahramani 2003, eq. 7, on the propagation below).

    Propagation is linear, Z = (I - alpha S)^-1 Y, so the answer c for candidate j only
    changes column c: Z'_c = (n_c Z_c + G_j) / (n_c + 1) with class-balanced Y (each
    column divided by its n_c labels), Z_c + G_j without. Z (N, C) current scores, G (N, M)
    propagated unit vectors of the M candidates, counts (C,) labels per class, q (M, C)
    answer probabilities, free (N,) bool items whose risk counts, cand (M,) the candidates'
    rows (a labelled candidate no longer counts). Returns (M,)."""
    n, c = Z.shape
    P = np.clip(Z, 0, None)  # (N, C)
    s = P.sum(1)  # (N,)
    order = np.argsort(-P, axis=1)
    top1, top2 = P[np.arange(n), order[:, 0]], P[np.arange(n), order[:, min(1, c - 1)]]
    if c == 1:
        top2 = np.zeros(n)
    other = np.where(order[:, :1] == np.arange(c)[None, :], top2[:, None], top1[:, None])  # (N, C)
    scale = counts / (counts + 1.0) if balanced else np.ones(c)  # (C,)
    add = 1.0 / (counts + 1.0) if balanced else np.ones(c)
    out = np.empty(G.shape[1])
    for m in range(G.shape[1]):
        new = np.clip(Z * scale + G[:, m:m + 1] * add, 0, None)  # (N, C) column c if answer c
        s2 = s[:, None] - P + new
        conf = np.where(s2 > 0, np.maximum(other, new) / np.maximum(s2, 1e-30), 1.0 / c)
        risk = ((1.0 - conf) * free[:, None]).sum(0) - (1.0 - conf[cand[m]]) * free[cand[m]]  # (C,)
        out[m] = float(q[m] @ risk)
    return out


class ExpectedErrorReduction:
    """Graph expected error reduction (Zhu et al. 2003) on a candidate subset: the
    ``top`` smallest-margin items plus ``spread`` random ones, each scored by how much it
    lowers the expected pool risk; the rest score -inf, and ``rank`` takes a diverse batch
    among the candidates."""
    candidates_factor = None
    top = 100
    spread = 100

    def score(self, inputs: ScoreInputs) -> np.ndarray:
        p = inputs.probs
        free = inputs.unlabelled
        prop = inputs.propagation or PropagationConfig()
        labels = np.where(free, -1, np.asarray(inputs.labels if inputs.labels is not None else -1))
        # 1. candidates: most uncertain, plus a random spread
        idx = np.where(free)[0]
        best = idx[np.argsort(margin(p[idx]), kind="stable")[:self.top]]
        rest = np.setdiff1d(idx, best)
        extra = inputs.rng.choice(rest, size=min(self.spread, len(rest)), replace=False)
        cand = np.concatenate([best, extra]).astype(np.int64)
        scores = np.full(len(p), -np.inf)
        if len(cand) == 0:
            return scores
        # 2. current propagation and each candidate's propagated unit vector
        S = inputs.knn.S
        Y = label_matrix(labels, p.shape[1], balance=prop.balance_labels)
        Z = propagate(S, Y, prop.alpha, prop.cg_iters, prop.cg_tol).astype(np.float64)  # (N, C)
        E = np.zeros((len(p), len(cand)), np.float32)
        E[cand, np.arange(len(cand))] = 1.0
        G = propagate(S, E, prop.alpha, prop.cg_iters, prop.cg_tol).astype(np.float64)  # (N, M)
        counts = np.bincount(labels[labels >= 0], minlength=p.shape[1]).astype(np.float64)
        # 3. reduction of the expected risk
        after = expected_risk(Z, G, counts, p[cand].astype(np.float64), free, prop.balance_labels, cand)
        scores[cand] = pool_risk(Z, free) - after
        return scores


def pool_risk(Z: np.ndarray, free: np.ndarray) -> float:
    """sum over the ``free`` rows of 1 - max_c p_c, p the row-normalised [Z]_+."""
    P = np.clip(Z, 0, None)
    s = P.sum(1)
    conf = np.where(s > 0, P.max(1) / np.maximum(s, 1e-30), 1.0 / Z.shape[1])
    return float(((1.0 - conf) * free).sum())


# candidates for ``auto`` beside the public ``scores.STRATEGIES``
EXTRA = {
    "density-margin": DensityMargin,
    "coverage": Coverage,
    "coverage-margin": CoverageMargin,
    "badge": BADGE,
    "eer": ExpectedErrorReduction,
}
