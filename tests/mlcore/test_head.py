"""The embedding head (mlcore.head): training against a naive reference, soft targets,
held-out honesty, adoption only when it wins, BALD from the human labels, persistence."""

import dataclasses

import numpy as np
import pytest
import torch

from mlcore.config import HeadConfig, LearnerConfig, PropagationConfig, from_dict, to_dict
from mlcore.embedding_learner import EmbeddingLearner, unit_rows
from mlcore.fast import fast_update, fold_propagation
from mlcore.head import Targets, fit, member_targets, train_stack
from mlcore.propagation import knn_graph, label_matrix


def blobs(n_per=60, classes=3, dim=8, spread=0.15, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim))
    x = np.concatenate([c + spread * rng.normal(size=(n_per, dim)) for c in centers])
    y = np.repeat(np.arange(classes), n_per)
    return unit_rows(x), y


def some_labels(y, per_class, seed=0):
    rng = np.random.default_rng(seed)
    labels = -np.ones(len(y), np.int64)
    for c in np.unique(y):
        pick = rng.choice(np.flatnonzero(y == c), per_class, replace=False)
        labels[pick] = c
    return labels


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # tiny problems: a second thread only adds contention


def config(classes=3, **head):
    return LearnerConfig(num_classes=classes, propagation=PropagationConfig(k=8, balance_labels=True),
                         head=HeadConfig(**head))


def test_the_head_separates_tiny_separable_data():
    x, y = blobs()
    labels = some_labels(y, 3)
    Y = label_matrix(labels, 3)
    prop = fast_update(x, knn_graph(x, 8, device="cpu"), labels, 3).probs
    f = fit(x, labels, Y, prop, 3, HeadConfig(), seed=0)
    assert (f.head.probs(x)[0].argmax(1) == y).mean() > 0.97


def reference_logistic(x, soft, weights, cfg, steps):
    """Naive full-batch weighted softmax regression with AdamW, one sample at a time."""
    d, c = x.shape[1], soft.shape[1]
    w = torch.zeros(d, c, requires_grad=True)
    b = torch.zeros(c, requires_grad=True)
    opt = torch.optim.AdamW([w, b], lr=cfg.lr, weight_decay=cfg.weight_decay)
    xs = torch.from_numpy(x) * np.sqrt(d)
    for _ in range(steps):
        total = 0
        for i in range(len(x)):
            logp = torch.log_softmax(xs[i] @ w + b, 0)
            total = total - float(weights[i]) * (torch.from_numpy(soft[i]) * logp).sum()
        loss = total / float(weights.sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (xs @ w + b).detach().numpy()


def test_a_linear_stack_member_equals_a_naive_weighted_logistic_regression():
    x, y = blobs(n_per=10)
    rng = np.random.default_rng(1)
    cfg = HeadConfig(dropout=0.0, steps=15, lr=0.05, weight_decay=0.01)
    soft = np.eye(3, dtype=np.float32)[y]
    # three members on the same rows with different weights: each must be its own model
    weights = rng.uniform(0.1, 2.0, size=(3, len(y))).astype(np.float32)
    t = Targets(np.arange(len(y)), soft, weights, np.zeros((3, len(y)), np.int64),
                np.zeros((3, len(y)), np.float32))
    stack = train_stack(x, t, 3, cfg, seed=0)
    with torch.no_grad():
        got = stack(torch.from_numpy(x)).numpy()  # (3, N, C) logits
    for m in range(3):
        want = reference_logistic(x, soft, weights[m], cfg, cfg.steps)
        np.testing.assert_allclose(got[m], want, atol=2e-4)


def test_soft_labels_are_the_targets_of_their_rows():
    x = unit_rows(np.array([[1.0, 0.2], [0.2, 1.0]], np.float32))
    soft = np.array([[0.7, 0.3], [0.0, 0.0]], np.float32)
    labels = np.array([-1, -1])
    Y = label_matrix(labels, 2, soft)
    t = member_targets(Y, np.array([0]), [np.full((2, 2), 0.5, np.float32)], [np.zeros(0, np.int64)], 2, 10, 0)
    np.testing.assert_allclose(t.soft, [[0.7, 0.3]])
    cfg = HeadConfig(dropout=0.0, steps=400, lr=0.05, weight_decay=0.0)
    p = train_stack(x, t, 2, cfg).probs(x[:1])[0, 0]
    np.testing.assert_allclose(p, [0.7, 0.3], atol=0.03)


def test_held_out_labels_reach_neither_propagation_nor_the_fold_heads():
    """Changing the held-out labels of fold 0 must not change fold 0's out-of-fold
    probabilities, from propagation or from its head."""
    x, y = blobs(n_per=40, spread=0.4)
    labels = some_labels(y, 10)
    graph = knn_graph(x, 8, device="cpu")
    cfg = HeadConfig(min_heldout=5)

    def fold0(lab):
        helds, Z = fold_propagation(graph, lab, 3, PropagationConfig(k=8), 5, seed=0)
        prop = fast_update(x, graph, lab, 3).probs
        f = fit(x, lab, label_matrix(lab, 3), prop, 3, cfg, 0, helds, Z)
        rows, p_prop, p_head = f.parts
        at = np.isin(rows, helds[0])
        return helds[0], p_prop[at], p_head[at]

    held, prop_a, head_a = fold0(labels)
    flipped = labels.copy()
    flipped[held] = (labels[held] + 1) % 3
    held_b, prop_b, head_b = fold0(flipped)
    np.testing.assert_array_equal(held, held_b)
    np.testing.assert_allclose(prop_a, prop_b, atol=1e-6)
    np.testing.assert_allclose(head_a, head_b, atol=1e-6)


def wrong_graph_learner(seed=0):
    """Separable blobs whose kNN graph links each item to items of other classes: the
    head on the embeddings is right where propagation is not."""
    x, y = blobs(n_per=80, spread=0.3, seed=seed)
    learner = EmbeddingLearner(config(min_heldout=10), x, "cpu")
    rng = np.random.default_rng(seed)
    scrambled = x[rng.permutation(len(x))]
    learner.graph = knn_graph(scrambled, 8, device="cpu")  # edges between random items
    return learner, y


def useless_head_learner(seed=0):
    """Embeddings that are pure noise (nothing for a head to learn) but a graph built on
    the classes' true structure: propagation is right, the head is not."""
    _, y = blobs(n_per=80, seed=seed)
    clean, _ = blobs(n_per=80, spread=0.1, seed=seed)
    noise = unit_rows(np.random.default_rng(seed + 7).normal(size=clean.shape).astype(np.float32))
    learner = EmbeddingLearner(config(min_heldout=10), noise, "cpu")
    learner.graph = knn_graph(clean, 8, device="cpu")
    return learner, y


def test_a_head_that_beats_propagation_on_held_out_labels_is_mixed_in():
    learner, y = wrong_graph_learner()
    labels = some_labels(y, 20)
    probs = learner.fast_update(labels)
    choice = learner.head_choice
    assert choice["w"] > 0 and choice["verdict"]["adopt"]
    assert choice["heldout"] == 60 and choice["source"] == "folds"
    assert choice["accuracy"][str(choice["w"])] > choice["accuracy"]["0.0"] + 0.2
    open_rows = labels < 0
    plain = fast_update(learner.emb, learner.graph, labels, 3, learner.cfg.propagation).probs
    served = (probs[open_rows].argmax(1) == y[open_rows]).mean()
    assert served > 0.75 and served > (plain[open_rows].argmax(1) == y[open_rows]).mean() + 0.3
    # the served held-out probabilities are the mix, not propagation's
    rows, oof = learner.heldout_probabilities(labels)
    assert (oof.argmax(1) == labels[rows]).mean() == pytest.approx(choice["accuracy"][str(choice["w"])], abs=1e-4)
    # and inductive guesses mix the head in too
    assert (learner.predict_embeddings(learner.emb).argmax(1) == y).mean() > 0.75


def test_a_head_worse_than_propagation_is_not_mixed_in():
    learner, y = useless_head_learner()
    labels = some_labels(y, 20)
    plain = fast_update(learner.emb, learner.graph, labels, 3, learner.cfg.propagation).probs
    probs = learner.fast_update(labels)
    assert learner.head_choice["w"] == 0.0
    np.testing.assert_array_equal(probs, plain)
    rows, oof = learner.heldout_probabilities(labels)
    assert (oof.argmax(1) == labels[rows]).mean() > 0.9


def test_given_held_out_rows_choose_the_weight():
    learner, y = wrong_graph_learner()
    labels = some_labels(y, 20)
    audits = np.flatnonzero(labels >= 0)[::3]
    learner.fast_update(labels, heldout=audits)
    choice = learner.head_choice
    assert choice["source"] == "given" and choice["heldout"] == len(audits)
    assert choice["w"] > 0


def test_bald_samples_come_from_a_head_of_the_human_labels():
    x, y = blobs(n_per=40)
    learner = EmbeddingLearner(config(mix=False, dropout=0.3), x, "cpu")
    labels = some_labels(y, 4)
    learner.fast_update(labels)
    # propagation's output on the labelled rows says another class: BALD's head must not care
    lab = np.flatnonzero(labels >= 0)
    wrong = np.eye(3, dtype=np.float32)[(labels[lab] + 1) % 3]
    learner.prop_probs = learner.prop_probs.copy()
    learner.prop_probs[lab] = wrong
    learner.last.probs[lab] = wrong
    mc = learner._mc_probs()  # (T, N, C)
    assert mc.shape == (learner.cfg.acquisition.mc_samples, len(x), 3)
    assert (mc.mean(0)[lab].argmax(1) == labels[lab]).all()
    assert mc.std(0).max() > 1e-4  # dropout makes the samples differ
    # and its targets: human labels on labelled rows, no pseudo-label there
    t = member_targets(label_matrix(labels, 3), lab, [learner.prop_probs], [np.zeros(0, np.int64)], 3, 10_000, 0)
    assert (t.pseudo_w[0, :len(lab)] == 0).all()
    np.testing.assert_array_equal(t.soft.argmax(1), labels[lab])


def test_the_head_survives_a_checkpoint(tmp_path):
    learner, y = wrong_graph_learner()
    labels = some_labels(y, 20)
    learner.fast_update(labels)
    assert learner.fit.w > 0
    path = str(tmp_path / "learner.pt")
    learner.save(path, labels)
    again = EmbeddingLearner.load(path, learner.emb)
    assert again.fit.w == learner.fit.w
    np.testing.assert_allclose(again.predict_embeddings(learner.emb[:20]),
                               learner.predict_embeddings(learner.emb[:20]), atol=1e-6)


def test_a_config_saved_before_the_head_existed_still_loads():
    d = to_dict(config())
    del d["fields"]["head"]
    cfg = from_dict(d)
    assert cfg.head == HeadConfig()
    assert dataclasses.asdict(cfg)["propagation"]["k"] == 8


def test_a_weight_is_adopted_only_when_it_wins_by_more_than_the_noise():
    from mlcore.head import choose_weight
    truth = np.zeros(40, np.int64)
    prop = np.tile([0.6, 0.4], (40, 1)).astype(np.float32)
    head = prop.copy()
    prop[:3] = [0.4, 0.6]  # propagation wrong on 3 items, the head right on them
    head[3] = [0.1, 0.9]  # and the head wrong on one propagation gets right
    cfg = HeadConfig(weights=(0.0, 1.0), min_heldout=10)
    slim = choose_weight(prop, head, truth, cfg)
    assert slim.accuracy[1.0] > slim.accuracy[0.0]
    assert slim.w == 0.0 and not slim.verdict["adopt"]  # 3 against 1: noise
    prop[:12] = [0.4, 0.6]
    clear = choose_weight(prop, head, truth, cfg)
    assert clear.w == 1.0 and clear.verdict["adopt"]
    assert choose_weight(prop[:9], head[:9], truth[:9], cfg).w == 0.0  # too few held-out items


def test_between_refits_the_last_head_is_served_and_judged_without_the_new_labels():
    learner, y = wrong_graph_learner()
    labels = some_labels(y, 20)
    learner.fast_update(labels)
    first = learner.fit
    more = labels.copy()
    fresh = np.flatnonzero(labels < 0)[:5]  # 60 -> 65 labels: below refit_growth
    more[fresh] = y[fresh]
    learner.fast_update(more)
    assert learner.fit is first
    rows, oof = learner.heldout_probabilities(more)
    assert np.isin(fresh, rows).all()
    at = np.searchsorted(rows, fresh)
    prop_rows, prop = fast_heldout(learner, more)
    want = (1 - first.w) * prop[np.searchsorted(prop_rows, fresh)] + first.w * first.head.probs(learner.emb[fresh])[0]
    np.testing.assert_allclose(oof[at], want / want.sum(1, keepdims=True), atol=1e-5)
    much_more = more.copy()
    much_more[labels < 0] = y[labels < 0]
    learner.fast_update(much_more)
    assert learner.fit is not first


def fast_heldout(learner, labels):
    from mlcore.fast import heldout_probabilities
    return heldout_probabilities(learner.graph, labels, 3, learner.cfg.propagation, seed=learner.cfg.seed)
