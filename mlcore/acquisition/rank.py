"""``rank``: score the pool with a named strategy and pick a diverse batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlcore.acquisition.diversity import select_diverse
from mlcore.acquisition.scores import STRATEGIES, ScoreInputs
from mlcore.acquisition.strategies import EXTRA
from mlcore.config import AcquisitionConfig, PropagationConfig
from mlcore.propagation import Graph

# ``auto`` = cold start (mlcore.acquisition.coldstart) while nothing is labelled, then
# this strategy; chosen from the benchmark measurements in mlcore/README.md.
AUTO_STRATEGY = "margin"
# Every name a caller may ask for; the app's Strategy choices must equal this (tested).
STRATEGY_NAMES = ("auto", *STRATEGIES)
# What ``rank`` understands: the public names and the geometry-aware candidates
REGISTRY = {**STRATEGIES, **EXTRA}


def resolve(strategy: str) -> str:
    name = AUTO_STRATEGY if strategy == "auto" else strategy
    if name not in REGISTRY:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGY_NAMES)}")
    return name


def rank(probs: np.ndarray, emb: np.ndarray, labels: np.ndarray, n: int,
         strategy: str = "auto", cfg: AcquisitionConfig | None = None,
         mc_fn: Callable[[], np.ndarray] | None = None, seed: int = 0,
         graph: Graph | None = None, propagation: PropagationConfig | None = None) -> np.ndarray:
    """Next ``n`` items to ask, best first.

    probs (N, C) pool probabilities; emb (N, D) unit embeddings for diversity; labels
    (N,) with -1 for unlabelled (labelled items are never returned); ``mc_fn`` returns
    MC-dropout samples (T, N, C) on demand (BALD); ``graph`` and ``propagation`` are the
    learner's kNN graph and propagation settings (strategies that need a graph build one
    on ``emb`` when it is not given)."""
    cfg = cfg or AcquisitionConfig()
    labels = np.asarray(labels)
    strat = REGISTRY[resolve(strategy)]()
    inputs = ScoreInputs(probs=probs, rng=np.random.default_rng(seed), mc_fn=mc_fn, emb=emb,
                         labels=labels, graph=graph, propagation=propagation)
    if hasattr(strat, "select"):  # the strategy builds its own batch
        return strat.select(inputs, n)
    scores = np.asarray(strat.score(inputs), dtype=np.float64)
    scores[labels >= 0] = -np.inf
    factor = strat.candidates_factor or cfg.candidates_factor
    return select_diverse(emb, scores, n, factor * n, seed=seed)
