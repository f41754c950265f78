"""``rank``: score the pool with a named strategy and pick a diverse batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlcore.acquisition.diversity import select_diverse
from mlcore.acquisition.scores import STRATEGIES, ScoreInputs
from mlcore.config import AcquisitionConfig

# ``auto`` = cold start (mlcore.acquisition.coldstart) while nothing is labelled, then
# this strategy; chosen from the benchmark measurements in mlcore/README.md.
AUTO_STRATEGY = "margin"
# Every name a caller may ask for; the app's Strategy choices must equal this (tested).
STRATEGY_NAMES = ("auto", *STRATEGIES)


def resolve(strategy: str) -> str:
    name = AUTO_STRATEGY if strategy == "auto" else strategy
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGY_NAMES)}")
    return name


def rank(probs: np.ndarray, emb: np.ndarray, labels: np.ndarray, n: int,
         strategy: str = "auto", cfg: AcquisitionConfig | None = None,
         mc_fn: Callable[[], np.ndarray] | None = None, seed: int = 0) -> np.ndarray:
    """Next ``n`` items to ask, best first.

    probs (N, C) pool probabilities; emb (N, D) unit embeddings for diversity; labels
    (N,) with -1 for unlabelled (labelled items are never returned); ``mc_fn`` returns
    MC-dropout samples (T, N, C) on demand (BALD)."""
    cfg = cfg or AcquisitionConfig()
    scorer = STRATEGIES[resolve(strategy)]()
    inputs = ScoreInputs(probs=probs, rng=np.random.default_rng(seed), mc_fn=mc_fn)
    scores = np.asarray(scorer.score(inputs), dtype=np.float64)
    scores[labels >= 0] = -np.inf
    factor = scorer.candidates_factor or cfg.candidates_factor
    return select_diverse(emb, scores, n, factor * n, seed=seed)
