import numpy as np

from mlcore.acquisition.coldstart import cold_start
from mlcore.acquisition.diversity import select_diverse
from mlcore.acquisition.rank import rank
from mlcore.propagation import knn_graph


def test_select_diverse_never_duplicates():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n_items = rng.integers(5, 60)
        x = rng.normal(size=(n_items, 4)).astype(np.float32)
        x[: n_items // 2] = x[0]  # many exact duplicates in embedding space
        s = rng.random(n_items)
        s[rng.random(n_items) < 0.3] = -np.inf
        n = int(rng.integers(1, 12))
        out = select_diverse(x, s, n, 5 * n, seed=trial)
        assert len(out) == len(set(out.tolist())) == min(n, np.isfinite(s).sum())
        assert np.isfinite(s[out]).all()


def test_select_diverse_spreads_over_clusters(blobs):
    x, y = blobs(n_per=50, centers=5, spread=0.05)
    s = np.random.default_rng(0).random(len(y)) + (y == 0) * 0.5  # cluster 0 scores highest
    out = select_diverse(x, s, 5, 250)
    assert len(set(y[out])) == 5
    assert set(y[np.argsort(-s)[:5]]) == {0}  # top-5 alone would all come from one cluster


def test_rank_excludes_labelled(blobs):
    x, y = blobs(n_per=20, centers=3)
    labels = -np.ones(len(y), int)
    labels[:30] = y[:30]
    p = np.full((len(y), 3), 1 / 3)
    for strategy in ("random", "entropy", "margin", "least-confidence", "auto"):
        out = rank(p, x, labels, 10, strategy)
        assert len(set(out.tolist())) == 10 and (out >= 30).all()


def test_cold_start_covers_clusters(blobs):
    x, y = blobs(n_per=60, centers=8, spread=0.08, seed=3)
    g = knn_graph(x, k=10, device="cpu")
    picks = cold_start(x, g, 8, seed=0)
    assert len(set(picks.tolist())) == 8
    assert len(set(y[picks])) == 8
    labeled = np.zeros(len(y), bool)
    labeled[picks[:4]] = True
    more = cold_start(x, g, 4, labeled, seed=0)
    assert not labeled[more].any()
    assert len(set(y[np.concatenate([picks[:4], more])])) == 8
