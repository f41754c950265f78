import numpy as np
import scipy.sparse as sp

from mlcore.propagation import (affinity, certainty_weights, class_weights, knn_graph,
                                knn_predict, label_matrix, normalize_graph, probabilities,
                                propagate)


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
