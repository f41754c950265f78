"""Acquisition scores. Each strategy is a small class that only computes a score
(higher = ask the human first) with the one shared signature ``score(inputs)``;
``STRATEGIES`` is the name registry. Labelled items are masked by the caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from mlcore.config import PropagationConfig
from mlcore.propagation import Graph


@dataclass
class ScoreInputs:
    """What a score may use. ``mc_probs`` and ``knn`` are computed on first access only,
    so strategies that do not need MC-dropout samples or a kNN graph cost nothing extra."""
    probs: np.ndarray  # (N, C) current class probabilities of the pool
    rng: np.random.Generator
    mc_fn: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    emb: np.ndarray | None = field(default=None, repr=False)  # (N, D) unit embeddings
    labels: np.ndarray | None = field(default=None, repr=False)  # (N,) -1 = unlabelled
    graph: Graph | None = field(default=None, repr=False)  # the propagation's kNN graph
    propagation: PropagationConfig | None = None  # how that graph's labels propagate

    @cached_property
    def knn(self) -> Graph:
        """The kNN graph: the caller's, else one built on ``emb`` (k=10, as the presets)."""
        if self.graph is not None:
            return self.graph
        if self.emb is None:
            raise ValueError("this strategy needs the kNN graph or the embeddings")
        from mlcore.propagation import knn_graph
        return knn_graph(self.emb, k=min(10, len(self.emb) - 1), device="cpu")

    @property
    def unlabelled(self) -> np.ndarray:  # (N,) bool
        if self.labels is None:
            return np.ones(len(self.probs), bool)
        return np.asarray(self.labels) < 0

    @cached_property
    def mc_probs(self) -> np.ndarray:  # (T, N, C)
        if self.mc_fn is None:
            raise ValueError("this strategy needs MC-dropout samples (mc_fn)")
        return self.mc_fn()


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis)


class Random:
    candidates_factor = 1  # no diversity re-ranking: the batch is the top-n of noise

    def score(self, inputs: ScoreInputs) -> np.ndarray:
        return inputs.rng.random(len(inputs.probs))


class Entropy:
    candidates_factor = None  # use the config's factor

    def score(self, inputs: ScoreInputs) -> np.ndarray:
        """H(p) = -sum_c p_c log p_c (Shannon 1948; Settles 2009)."""
        return entropy(inputs.probs)


def margin(p: np.ndarray) -> np.ndarray:
    """p_top1 - p_top2 per row of (N, C) (the runner-up of a single class is 0)."""
    if p.shape[1] < 2:
        p = np.concatenate([p, np.zeros_like(p)], axis=1)
    top2 = np.sort(p, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


class Margin:
    candidates_factor = None

    def score(self, inputs: ScoreInputs) -> np.ndarray:
        """-(p_top1 - p_top2): small margins between the two best classes first."""
        return -margin(inputs.probs)


class LeastConfidence:
    candidates_factor = None

    def score(self, inputs: ScoreInputs) -> np.ndarray:
        """1 - max_c p_c."""
        return 1.0 - inputs.probs.max(1)


class BALD:
    candidates_factor = None

    def score(self, inputs: ScoreInputs) -> np.ndarray:
        """Mutual information between prediction and weights (Houlsby et al. 2011;
        Gal et al. 2017, eq. 4): H(mean_t p_t) - mean_t H(p_t) over T MC-dropout passes."""
        mc = inputs.mc_probs  # (T, N, C)
        return entropy(mc.mean(0)) - entropy(mc).mean(0)


STRATEGIES = {
    "random": Random,
    "entropy": Entropy,
    "margin": Margin,
    "least-confidence": LeastConfidence,
    "bald": BALD,
}
