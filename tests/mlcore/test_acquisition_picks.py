"""What acquisition actually picks, on hand-built probabilities: each strategy returns the
item a naive per-item loop says it should (a flipped sign or a wrong axis fails), labelled
items never, BALD tells disagreement from plain uncertainty, and ``auto`` leaves the cold
start exactly at ``cold_start_until`` labels."""
import math

import numpy as np
import pytest

from mlcore.acquisition.rank import AUTO_STRATEGY, rank
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.presets import recommended_config


def _probs(n=40, c=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * rng.uniform(0.2, 4, size=(n, 1))
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def _naive_score(strategy, row):
    row = [float(v) for v in row]
    best, second = sorted(row, reverse=True)[:2]
    if strategy == "margin":
        return -(best - second)
    if strategy == "entropy":
        return -sum(v * math.log(v) for v in row if v > 0)
    if strategy == "least-confidence":
        return 1 - best
    raise AssertionError(strategy)


def _spread_embeddings(n, seed=1):
    x = np.random.default_rng(seed).normal(size=(n, 8))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("strategy", ["margin", "entropy", "least-confidence"])
def test_the_best_scored_unlabelled_item_is_asked_first(strategy):
    p = _probs()
    labels = np.full(len(p), -1)
    scores = [_naive_score(strategy, row) for row in p]
    order = np.argsort(scores)[::-1]
    labels[order[0]] = 2  # the very best item is labelled: it must not come back
    picks = rank(p, _spread_embeddings(len(p)), labels, 1, strategy)
    assert picks.tolist() == [order[1]]


@pytest.mark.parametrize("strategy", ["margin", "entropy", "least-confidence"])
def test_a_batch_comes_from_the_top_candidates_only(strategy):
    p = _probs(n=60, seed=3)
    labels = np.full(len(p), -1)
    n, factor = 4, 3
    picks = rank(p, _spread_embeddings(len(p)), labels, n, strategy)
    scores = np.array([_naive_score(strategy, row) for row in p])
    top = set(np.argsort(-scores)[: n * factor].tolist())  # the config's default factor is 3
    assert len(set(picks.tolist())) == n and set(picks.tolist()) <= top
    assert scores[picks].tolist() == sorted(scores[picks].tolist(), reverse=True)  # best first


def test_bald_prefers_disagreeing_samples_over_a_confident_average_of_doubt():
    n = 6
    samples = np.full((2, n, 2), 0.5)
    samples[:, 1] = [0.95, 0.05]                     # confident, agreeing: MI ~ 0
    samples[0, 4], samples[1, 4] = [1.0, 0.0], [0.0, 1.0]  # disagreeing passes: MI = log 2
    mean = samples.mean(0)                          # item 4's mean is uniform, like items 0, 2, 3, 5
    labels = np.full(n, -1)
    picks = rank(mean, _spread_embeddings(n), labels, 1, "bald", mc_fn=lambda: samples)
    assert picks.tolist() == [4]
    # Entropy alone cannot tell item 4 from the always-uncertain ones (all log 2).
    ent = -(mean * np.log(np.clip(mean, 1e-12, None))).sum(1)
    assert np.isclose(ent[4], ent[0])


def _clusters(n_per=30, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 16)) * 4
    emb = np.concatenate([c + rng.normal(size=(n_per, 16)) for c in centres]).astype(np.float32)
    return emb, np.repeat(np.arange(classes), n_per)


def test_auto_switches_from_the_cold_start_exactly_at_its_threshold():
    emb, truth = _clusters()
    cfg = recommended_config(3, 224, 3)
    learner = EmbeddingLearner(cfg, emb, device="cpu")
    threshold = 6
    learner.set_num_classes(3, cold_start_until=threshold)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(truth))
    for n_labels in (threshold - 1, threshold):
        labels = np.full(len(truth), -1)
        labels[order[:n_labels]] = truth[order[:n_labels]]
        learner.fast_update(labels)
        got = learner.rank(5, labels, "auto")
        cold = learner.cold_start(5, labels)
        ranked = rank(learner.last.probs, learner.embeddings, labels, 5, AUTO_STRATEGY, cfg.acquisition,
                      seed=cfg.seed)
        if n_labels < threshold:
            assert got.tolist() == cold.tolist()
        else:
            assert got.tolist() == ranked.tolist()
    assert not np.array_equal(cold, ranked)  # the two branches differ here, so the test can tell
