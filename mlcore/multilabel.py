"""Multi-label pools: one-vs-rest label propagation on the kNN graph, per-class uncertainty
for acquisition, suggested sets, and the honest measures of a set guess.

An answer is a set of classes (an empty set: none applies). The arrays:
  targets (N, C) float in [0, 1]: for an answered item, the share of its annotators who
      said class c applies (0 or 1 with one annotator); ignored for unanswered rows;
  labeled (N,) bool: the answered items (an empty set is an answer: every class negative).

Each class is its own binary problem on the same graph (Iscen et al. 2019, eq. 10, solved
once for all 2C columns): a class's positives propagate in one column, the answers without
it in another, and p_c = z+_c / (z+_c + z-_c). Each p_c lies in [0, 1] on its own, there is
no softmax across classes (classes co-occur), and unnormalised columns keep each class's
prior: a rare class needs nearby positives to win. Rows no answer reached get the class's
share among the answers. Answered rows are clamped to their answers, as in the single-label
fast path."""

from __future__ import annotations

import numpy as np

from mlcore.acquisition.diversity import select_diverse
from mlcore.config import AcquisitionConfig, PropagationConfig
from mlcore.propagation import Graph, propagate

SUGGEST_AT = 0.5  # a class belongs to the suggested set when p_c >= this


def check_targets(targets, labeled, num_classes: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(targets float32 (N, C) in [0, 1], labeled bool (N,)); a clear ValueError otherwise."""
    t = np.asarray(targets, dtype=np.float32)
    m = np.asarray(labeled)
    if t.ndim != 2 or t.shape[1] != num_classes:
        raise ValueError(f"targets must have shape (N, {num_classes}), got {t.shape}")
    if m.shape != (len(t),) or m.dtype != bool:
        raise ValueError(f"labeled must be a bool array of shape ({len(t)},), got {m.dtype} {m.shape}")
    if n is not None and len(t) != n:
        raise ValueError(f"targets has {len(t)} rows but the pool has {n} items")
    if t.size and (not np.isfinite(t).all() or t.min() < 0 or t.max() > 1):
        raise ValueError("targets must lie in [0, 1]")
    return t, m


def binary_columns(targets: np.ndarray, labeled: np.ndarray) -> np.ndarray:
    """Y (N, 2C): per class, positives then negatives: [t_c | 1 - t_c] on answered rows."""
    w = labeled.astype(np.float32)[:, None]
    return np.concatenate([targets * w, (1.0 - targets) * w], axis=1)


def class_priors(targets: np.ndarray, labeled: np.ndarray) -> np.ndarray:
    """(C,) each class's share among the answers (0.5 with none)."""
    if not labeled.any():
        return np.full(targets.shape[1], 0.5, np.float32)
    return targets[labeled].mean(0).astype(np.float32)


def set_probabilities(Z: np.ndarray, priors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P (N, C), reached (N,)) from propagated columns Z (N, 2C): p_c = z+ / (z+ + z-)
    with negative mass clipped at 0; where neither column reached, the class's prior."""
    c = Z.shape[1] // 2
    pos, neg = np.clip(Z[:, :c], 0, None), np.clip(Z[:, c:], 0, None)
    total = pos + neg
    p = np.where(total > 0, pos / np.maximum(total, 1e-30), priors[None, :])
    return p.astype(np.float32), (total > 0).any(1)


def propagate_sets(graph: Graph, targets, labeled, num_classes: int,
                   cfg: PropagationConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(P (N, C) per-class probabilities, reached (N,)) for every pool item."""
    cfg = cfg or PropagationConfig()
    targets, labeled = check_targets(targets, labeled, num_classes, graph.S.shape[0])
    priors = class_priors(targets, labeled)
    if not labeled.any():
        return np.tile(priors, (len(targets), 1)), np.zeros(len(targets), bool)
    Z = propagate(graph.S, binary_columns(targets, labeled), cfg.alpha, cfg.cg_iters, cfg.cg_tol)
    p, reached = set_probabilities(Z, priors)
    p[labeled] = targets[labeled]  # the humans' answers are the truth for answered items
    return p, reached


def heldout_sets(graph: Graph, targets, labeled, num_classes: int, cfg: PropagationConfig | None = None,
                 folds: int = 5, seed: int = 0, max_items: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold per-class probabilities of the answered items: (rows, probs (L, C)), as
    ``mlcore.fast.heldout_probabilities`` does for single labels (the folds' 2C columns
    stacked into one solve; one fold only on pools over ``max_items``)."""
    cfg = cfg or PropagationConfig()
    targets, labeled = check_targets(targets, labeled, num_classes, graph.S.shape[0])
    lab = np.where(labeled)[0]
    if len(lab) < 2:
        return lab, np.zeros((len(lab), num_classes), np.float32)
    order = np.random.default_rng(seed).permutation(lab)
    helds = [order[f::folds] for f in range(min(folds, len(lab)))]
    if max_items is not None and len(labeled) > max_items:
        helds = helds[:1]
    Ys, priors = [], []
    for held in helds:
        train = labeled.copy()
        train[held] = False
        Ys.append(binary_columns(targets, train))
        priors.append(class_priors(targets, train))
    Z = propagate(graph.S, np.concatenate(Ys, axis=1), cfg.alpha, cfg.cg_iters, cfg.cg_tol)  # (N, F*2C)
    rows = np.sort(np.concatenate(helds))
    position = np.empty(len(labeled), np.int64)
    position[rows] = np.arange(len(rows))
    probs = np.zeros((len(rows), num_classes), np.float32)
    w = 2 * num_classes
    for f, held in enumerate(helds):
        probs[position[held]] = set_probabilities(Z[held, f * w:(f + 1) * w], priors[f])[0]
    return rows, probs


# --- acquisition ------------------------------------------------------------------------

def binary_entropy(p: np.ndarray) -> np.ndarray:
    """H(p) in nats of each independent Bernoulli p (any shape)."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)  # float32 rounds 1 - 1e-12 to 1
    return -(q * np.log(q) + (1 - q) * np.log(1 - q))


def set_uncertainty(P: np.ndarray) -> np.ndarray:
    """(N,) mean over classes of the binary entropy / log 2: 0 = every class sure, 1 = all at 0.5."""
    if P.shape[1] == 0:
        return np.zeros(len(P), np.float32)
    return (binary_entropy(P).mean(1) / np.log(2)).astype(np.float32)


def set_scores(P: np.ndarray, strategy: str, rng: np.random.Generator) -> np.ndarray:
    """Acquisition scores of a multi-label pool (higher = ask first). "entropy" (and "bald",
    which needs a softmax head's samples this path does not fit): the mean binary entropy over
    classes; "margin", "least-confidence" and "auto": the distance to 0.5 of the class nearest
    it, negated (the one class the model can least decide); "random": noise."""
    if strategy == "random":
        return rng.random(len(P))
    if strategy in ("entropy", "bald"):
        return binary_entropy(P).mean(1)
    return -np.abs(P - 0.5).min(1)


def rank_sets(P: np.ndarray, emb: np.ndarray, labeled: np.ndarray, n: int, strategy: str,
              cfg: AcquisitionConfig | None = None, seed: int = 0) -> np.ndarray:
    """Next ``n`` items to ask, best first, from per-class probabilities (N, C); answered
    items are never returned; a diverse batch as ``mlcore.acquisition.rank`` picks it."""
    cfg = cfg or AcquisitionConfig()
    scores = np.asarray(set_scores(P, strategy, np.random.default_rng(seed)), dtype=np.float64)
    scores[labeled] = -np.inf
    factor = 1 if strategy == "random" else cfg.candidates_factor
    return select_diverse(emb, scores, n, factor * n, seed=seed)


# --- measures -----------------------------------------------------------------------------

def set_metrics(truth: np.ndarray, guess: np.ndarray) -> dict:
    """How a set guess compares with the answers, both bool (L, C): "exact" (share of items
    whose whole set is right), "hamming_loss" (share of item-class decisions wrong),
    "per_class_f1" (C,) (None for a class absent from both), "macro_f1" (their mean)."""
    truth, guess = np.asarray(truth, bool), np.asarray(guess, bool)
    n = len(truth)
    if n == 0:
        return {"exact": None, "hamming_loss": None, "per_class_f1": [None] * truth.shape[1], "macro_f1": None}
    tp = (truth & guess).sum(0)
    fp = (~truth & guess).sum(0)
    fn = (truth & ~guess).sum(0)
    f1 = [None if t + p + q == 0 else float(2 * t / (2 * t + p + q)) for t, p, q in zip(tp, fp, fn)]
    scored = [f for f in f1 if f is not None]
    return {
        "exact": float((truth == guess).all(1).mean()),
        "hamming_loss": float((truth != guess).mean()) if truth.shape[1] else 0.0,
        "per_class_f1": f1,
        "macro_f1": float(np.mean(scored)) if scored else None,
    }
