"""Multi-label pools: one-vs-rest label propagation on the kNN graph, per-class calibration
and per-class uncertainty for acquisition. (The measures of a set guess, exact-set match,
Hamming loss and per-class F1, are NumPy the web process reads too:
``annotator.modelloop.set_measures``.)

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


# --- per-class calibration ----------------------------------------------------------------

def fit_platt(p: np.ndarray, truth: np.ndarray, iters: int = 25, ridge: float = 1.0) -> tuple[float, float]:
    """Platt scaling of one class (Platt 1999): (a, b) of sigmoid(a logit(p) + b) fitted to
    held-out 0/1 answers by Newton's method on the log-likelihood, with a ridge pulling
    towards the identity (a = 1, b = 0) so a few answers cannot flip a class."""
    x = _logit(p)
    y = np.asarray(truth, dtype=np.float64)
    w = np.array([1.0, 0.0])
    for _ in range(iters):
        q = 1.0 / (1.0 + np.exp(-np.clip(w[0] * x + w[1], -30, 30)))
        grad = np.array([((q - y) * x).sum(), (q - y).sum()]) + ridge * (w - [1.0, 0.0])
        h = q * (1 - q)
        hess = np.array([[(h * x * x).sum(), (h * x).sum()], [(h * x).sum(), h.sum()]]) + ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def calibrate_classes(heldout: np.ndarray, truth: np.ndarray, min_each: int = 8) -> np.ndarray:
    """(C, 2) Platt parameters per class from held-out probabilities (L, C) and 0/1 answers
    (L, C); a class with fewer than ``min_each`` positives or negatives keeps (1, 0)."""
    params = np.tile([1.0, 0.0], (heldout.shape[1], 1))
    t = np.asarray(truth) >= 0.5
    for c in range(heldout.shape[1]):
        pos = int(t[:, c].sum())
        if pos >= min_each and len(t) - pos >= min_each:
            params[c] = fit_platt(heldout[:, c], t[:, c])
    return params


def apply_calibration(P: np.ndarray, params: np.ndarray) -> np.ndarray:
    """sigmoid(a_c logit(p_c) + b_c) for each class column; each stays in [0, 1] on its own."""
    z = np.clip(_logit(P) * params[:, 0] + params[:, 1], -30, 30)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))
