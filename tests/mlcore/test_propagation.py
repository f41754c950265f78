import numpy as np
import pytest
import scipy.sparse as sp

from mlcore.propagation import (
    affinity,
    certainty_weights,
    class_weights,
    knn_graph,
    knn_predict,
    label_matrix,
    normalize_graph,
    probabilities,
    propagate,
)


def test_propagation_equals_closed_form():
    rng = np.random.default_rng(0)
    n, c, alpha = 12, 3, 0.9
    a = rng.random((n, n)) * (rng.random((n, n)) < 0.4)
    w = sp.csr_matrix(a + a.T)
    S = normalize_graph(w)
    labels = -np.ones(n, int)
    labels[[0, 5, 9]] = [0, 1, 2]
    Y = label_matrix(labels, c)
    Z = propagate(S, Y, alpha=alpha, iters=200, tol=1e-12)
    closed = np.linalg.solve(np.eye(n) - alpha * S.toarray(), Y)
    np.testing.assert_allclose(Z, closed, rtol=1e-4, atol=1e-5)


def test_normalize_graph_symmetric():
    w = sp.csr_matrix(np.array([[0, 1, 2], [1, 0, 0], [2, 0, 0]], float))
    S = normalize_graph(w).toarray()
    d = w.toarray().sum(1)
    np.testing.assert_allclose(S, w.toarray() / np.sqrt(np.outer(d, d)), rtol=1e-6)


def test_knn_graph_excludes_self_and_affinity_power(blobs):
    x, _ = blobs(n_per=10, centers=3)
    g = knn_graph(x, k=5, gamma=3.0, device="cpu")
    assert g.idx.shape == (30, 5)
    assert not (g.idx == np.arange(30)[:, None]).any()
    np.testing.assert_allclose(g.sims, np.take_along_axis(x @ x.T, g.idx, 1), atol=1e-5)
    w = affinity(g.idx, g.sims, 3.0).toarray()
    assert np.allclose(w, w.T)
    i, j = 0, g.idx[0, 0]
    expected = g.sims[0, 0] ** 3 + (g.sims[j][g.idx[j] == i] ** 3).sum()
    assert abs(w[i, j] - expected) < 1e-5


def test_propagation_labels_clusters(blobs):
    x, y = blobs(n_per=30, centers=4, spread=0.1)
    g = knn_graph(x, k=10, device="cpu")
    labels = -np.ones(len(y), int)
    for c in range(4):
        labels[np.where(y == c)[0][0]] = c
    P = probabilities(propagate(g.S, label_matrix(labels, 4)))
    assert (P.argmax(1) == y).mean() == 1.0
    pred = knn_predict(x[:5] + 0.01, x, P, k=5, device="cpu")
    assert (pred.argmax(1) == y[:5]).all()


def test_certainty_and_class_weights():
    P = np.array([[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]], float)
    w = certainty_weights(P)
    np.testing.assert_allclose(w, [1.0, 0.0, 1 - np.log(2) / np.log(3)], atol=1e-6)
    cw = class_weights(np.array([0, 0, 0, 1]), 2)
    # every class gets the same total weight
    assert abs(cw[:3].sum() - cw[3]) < 1e-6
    assert abs(cw.mean() - 1) < 1e-6


def test_probabilities_unreached_rows_uniform():
    Z = np.array([[2.0, 0.0], [0.0, 0.0], [-1e-9, 1.0]])
    P = probabilities(Z)
    np.testing.assert_allclose(P, [[1, 0], [0.5, 0.5], [0, 1]], atol=1e-6)


def test_cross_validated_accuracy_prefers_the_right_graph(blobs):
    from mlcore.fast import cross_validated_accuracy
    x, y = blobs(n_per=30, centers=4, spread=0.1)
    labels = -np.ones(len(y), int)
    pick = np.concatenate([np.where(y == c)[0][:5] for c in range(4)])
    labels[pick] = y[pick]
    good = cross_validated_accuracy(knn_graph(x, k=10, device="cpu"), labels, 4)
    shuffled = np.random.default_rng(0).permutation(len(x))
    bad = cross_validated_accuracy(knn_graph(x[shuffled], k=10, device="cpu"), labels, 4)
    assert good[0] == 1.0 and good > bad
    assert cross_validated_accuracy(knn_graph(x, k=10, device="cpu"), -np.ones(len(y), int), 4) is None


def _naive_heldout(S, labels, num_classes, alpha, folds, seed):
    """Reference: each fold's labels hidden, a dense solve of (I - alpha S) Z = Y, then
    [Z]+ row-normalised (uniform where nothing arrived)."""
    lab = np.where(labels >= 0)[0]
    order = np.random.default_rng(seed).permutation(lab)
    dense = S.toarray().astype(np.float64)
    out = {}
    for f in range(min(folds, len(lab))):
        held = order[f::folds]
        Y = np.zeros((len(labels), num_classes))
        train = [i for i in lab if i not in set(held)]
        Y[train, labels[train]] = 1.0
        Z = np.linalg.solve(np.eye(len(labels)) - alpha * dense, Y).clip(0, None)
        for i in held:
            s = Z[i].sum()
            out[int(i)] = Z[i] / s if s > 0 else np.full(num_classes, 1.0 / num_classes)
    return out


def test_heldout_probabilities_match_a_dense_solve(blobs):
    from mlcore.config import PropagationConfig
    from mlcore.fast import heldout_probabilities
    x, y = blobs(n_per=15, centers=3, spread=0.3)
    labels = -np.ones(len(y), int)
    labels[::3] = y[::3]
    graph = knn_graph(x, k=8, device="cpu")
    cfg = PropagationConfig(balance_labels=False, cg_iters=500, cg_tol=1e-12)
    rows, probs = heldout_probabilities(graph, labels, 3, cfg, folds=4, seed=7)
    assert list(rows) == list(np.where(labels >= 0)[0])
    naive = _naive_heldout(graph.S, labels, 3, cfg.alpha, 4, 7)
    for row, p in zip(rows, probs):
        np.testing.assert_allclose(p, naive[int(row)], atol=1e-4)


def test_heldout_on_a_budget_holds_out_the_first_fold_only(blobs):
    """Above max_items one fold is held out: its items only, with the same probabilities as
    in the full run (the folds are solved side by side, independently)."""
    from mlcore.config import PropagationConfig
    from mlcore.fast import heldout_probabilities
    x, y = blobs(n_per=15, centers=3, spread=0.3)
    labels = -np.ones(len(y), int)
    labels[::3] = y[::3]
    graph = knn_graph(x, k=8, device="cpu")
    cfg = PropagationConfig(balance_labels=False, cg_iters=500, cg_tol=1e-12)
    rows, probs = heldout_probabilities(graph, labels, 3, cfg, folds=4, seed=7)
    one_rows, one = heldout_probabilities(graph, labels, 3, cfg, folds=4, seed=7, max_items=len(y) - 1)
    first = np.random.default_rng(7).permutation(np.where(labels >= 0)[0])[0::4]
    assert list(one_rows) == sorted(first)
    np.testing.assert_allclose(one, probs[np.searchsorted(rows, one_rows)], atol=1e-5)
    same_rows, same = heldout_probabilities(graph, labels, 3, cfg, folds=4, seed=7, max_items=len(y))
    np.testing.assert_array_equal(same_rows, rows)


def test_heldout_probabilities_expose_a_wrong_label(blobs):
    """A label that contradicts its cluster is predicted as the cluster's class when held out."""
    from mlcore.fast import heldout_probabilities
    x, y = blobs(n_per=20, centers=3, spread=0.1)
    labels = y.copy()
    wrong = int(np.where(y == 0)[0][3])
    labels[wrong] = 2
    rows, probs = heldout_probabilities(knn_graph(x, k=8, device="cpu"), labels, 3)
    p = probs[list(rows).index(wrong)]
    assert p.argmax() == 0 and p[0] > 0.8
    others = np.delete(probs, list(rows).index(wrong), axis=0)
    assert (others.argmax(1) == np.delete(y, wrong)).mean() > 0.95


def test_fit_temperature_finds_the_grid_optimum_and_sharpens_underconfident_scores():
    from mlcore.fast import _temperature_nll, apply_temperature, fit_temperature
    rng = np.random.default_rng(0)
    n, c = 300, 4
    truth = rng.integers(0, c, n)
    logits = rng.normal(0, 1, (n, c))
    logits[np.arange(n), truth] += 2.5  # mostly right ...
    probs = np.exp(logits / 6)  # ... but squashed towards uniform
    probs /= probs.sum(1, keepdims=True)
    t = fit_temperature(probs, truth)
    logp = np.log(probs)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 4001))
    best = grid[np.argmin([_temperature_nll(logp, truth, 1 / g) for g in grid])]
    assert t == pytest.approx(best, rel=0.01)
    assert t < 0.5  # sharpened
    calibrated = apply_temperature(probs, t)
    np.testing.assert_array_equal(calibrated.argmax(1), probs.argmax(1))
    np.testing.assert_allclose(calibrated.sum(1), 1, atol=1e-5)
    accuracy = (probs.argmax(1) == truth).mean()
    assert abs(calibrated.max(1).mean() - accuracy) < abs(probs.max(1).mean() - accuracy) / 3
    assert fit_temperature(probs[:0], truth[:0]) == 1.0
