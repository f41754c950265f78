"""Honest model selection: a candidate (a fine-tuned encoder) is judged on labelled items
it never saw, against the current model on the same items, and adopted only when it wins
by more than the noise.

The items are the caller's held-out rows when it has enough (the app's audit items, drawn
uniformly at random), otherwise a seeded random share of the labelled items. Both models
propagate the *remaining* labels over their own graph and are scored on the held-out
items; the paired outcome (b = items only the candidate gets right, c = items only the
current model gets right) goes through a one-sided exact sign test: adopt iff
P(X >= b | X ~ Binomial(b + c, 1/2)) < alpha."""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

from mlcore.config import PropagationConfig
from mlcore.fast import fast_update
from mlcore.propagation import Graph


def holdout_rows(labels: np.ndarray, fraction: float, min_items: int, seed: int,
                 given: np.ndarray | None = None) -> np.ndarray:
    """Sorted rows of labelled items kept out of training: the labelled rows of ``given``
    when there are at least ``min_items`` of them, else a seeded random ``fraction`` of the
    labelled items (at least ``min_items``, never all of them). Empty when there are too
    few labelled items to hold out ``min_items`` and still train on as many."""
    labelled = np.flatnonzero(labels >= 0)
    if given is not None:
        own = np.intersect1d(np.asarray(given, dtype=np.int64), labelled)
        if len(own) >= min_items and len(own) < len(labelled):
            return own
    n = max(min_items, int(round(fraction * len(labelled))))
    if len(labelled) - n < min_items:
        return np.zeros(0, np.int64)
    return np.sort(np.random.default_rng(seed).choice(labelled, n, replace=False))


def sign_test_p(b: int, c: int) -> float:
    """One-sided exact sign test: P(X >= b) for X ~ Binomial(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    return sum(comb(n, k) for k in range(b, n + 1)) / 2 ** n


@dataclass
class Verdict:
    heldout: int           # held-out items scored
    current_correct: int
    candidate_correct: int
    candidate_only: int    # b
    current_only: int      # c
    p_value: float
    adopt: bool

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def heldout_correct(emb: np.ndarray, graph: Graph, train_labels: np.ndarray, rows: np.ndarray,
                    truth: np.ndarray, num_classes: int, cfg: PropagationConfig,
                    train_soft: np.ndarray | None = None) -> np.ndarray:
    """(len(rows),) bool: propagation of ``train_labels`` (the rows unlabelled) gets each
    held-out item's true class."""
    probs = fast_update(emb, graph, train_labels, num_classes, cfg, train_soft).probs
    return probs[rows].argmax(1) == truth


def compare(current: np.ndarray, candidate: np.ndarray, alpha: float) -> Verdict:
    """The paired verdict from two (M,) bool arrays of held-out correctness."""
    b = int((candidate & ~current).sum())
    c = int((current & ~candidate).sum())
    p = sign_test_p(b, c)
    return Verdict(len(current), int(current.sum()), int(candidate.sum()), b, c, p, b > c and p < alpha)
