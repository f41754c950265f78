"""Propagation as production runs it (the preset: k=10, class-balanced Y, alpha 0.99, 20
conjugate-gradient steps, soft labels) against a dense solve of the same system, written
out naively: the 20 CG steps stay within a stated error of the exact solution."""
import numpy as np

from mlcore.fast import fast_update
from mlcore.presets import recommended_config
from mlcore.propagation import knn_graph


def _naive(S, labels, soft, num_classes, alpha):
    """Y from hard and soft labels, each column divided by its mass; Z = (I - alpha S)^-1 Y;
    p = row-normalised [Z]+; labelled rows keep their own (normalised) label."""
    n = len(labels)
    Y = np.zeros((n, num_classes))
    for i, label in enumerate(labels):
        if label >= 0:
            Y[i, label] = 1.0
        if soft[i].sum() > 0:
            Y[i] = soft[i] / soft[i].sum()
    own = Y.copy()
    Y = Y / Y.sum(0, keepdims=True)
    Z = np.linalg.solve(np.eye(n) - alpha * S.toarray(), Y).clip(0, None)
    p = Z / Z.sum(1, keepdims=True)
    has = own.sum(1) > 0
    p[has] = own[has] / own[has].sum(1, keepdims=True)
    return p


def test_production_propagation_matches_a_dense_solve(blobs):
    x, y = blobs(n_per=60, centers=4, spread=0.2, seed=5)
    cfg = recommended_config(4, 28, 1).propagation
    assert (cfg.k, cfg.alpha, cfg.cg_iters, cfg.balance_labels) == (10, 0.99, 20, True)  # what is tested
    graph = knn_graph(x, k=cfg.k, gamma=cfg.gamma)
    rng = np.random.default_rng(0)
    labels = np.full(len(y), -1)
    picked = rng.choice(len(y), 14, replace=False)
    labels[picked[:10]] = y[picked[:10]]          # unbalanced: some classes have more labels
    soft = np.zeros((len(y), 4), np.float32)
    for i in picked[10:]:                        # overlapping answers: 2 votes to 1
        soft[i, y[i]] = 2
        soft[i, (y[i] + 1) % 4] = 1
    got = fast_update(x, graph, labels, 4, cfg, soft).probs
    want = _naive(graph.S, labels, soft, 4, cfg.alpha)
    assert np.abs(got - want).max() < 5e-3       # 20 CG steps, not the exact solve
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.98
    np.testing.assert_allclose(got[picked[10:]], want[picked[10:]], atol=1e-6)  # soft rows kept as given
    assert (got.argmax(1) == y).mean() > 0.9
