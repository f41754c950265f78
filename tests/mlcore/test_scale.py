"""The large-pool paths on tiny data: approximate kNN graph, incremental growth of a
graph, k-means cold start above ``spectral_max``."""

import numpy as np
import pytest

from mlcore.acquisition.coldstart import cold_start
from mlcore.config import LearnerConfig
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.knn import topk_merge
from mlcore.propagation import grow_graph, knn_graph


def recall(approx, exact):
    """Mean fraction of each row's exact neighbours found by the approximate lists."""
    return np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)])


@pytest.fixture
def pool(blobs):
    x, y = blobs(n_per=300, centers=8, dim=24, spread=0.25, seed=1)
    perm = np.random.default_rng(0).permutation(len(x))
    return x[perm], y[perm]


def test_approximate_graph_recall(pool):
    x, _ = pool
    exact = knn_graph(x, k=10, device="cpu")
    approx = knn_graph(x, k=10, exact_max=500, device="cpu")  # IVF-flat above 500 items
    assert approx.idx.shape == exact.idx.shape and (approx.idx >= 0).all()
    assert not (approx.idx == np.arange(len(x))[:, None]).any()
    assert recall(approx.idx, exact.idx) >= 0.9
    assert approx.S.shape == exact.S.shape and approx.S.dtype == np.float32


def test_exact_path_matches_brute_force(pool):
    x, _ = pool
    g = knn_graph(x[:400], k=7, device="cpu")
    s = x[:400] @ x[:400].T
    np.fill_diagonal(s, -np.inf)
    want = np.argsort(-s, axis=1)[:, :7]
    np.testing.assert_array_equal(np.sort(g.idx, 1), np.sort(want, 1))


def grown_pool(x, seed=0, new=0.2, deleted=0.05):
    """(old_rows (N',), new pool order): a random old pool, some rows deleted, new rows
    added, everything in a random order (the app's pools are ordered by a random index)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    is_old = rng.random(n) >= new
    old = np.where(is_old)[0]  # old pool = these rows of x, in this order
    keep = rng.random(n) >= deleted
    now = rng.permutation(np.where(keep)[0])  # the grown pool, shuffled
    pos_in_old = np.full(n, -1)
    pos_in_old[old] = np.arange(len(old))
    return old, now, pos_in_old[now]


def test_growth_below_exact_max_equals_a_rebuild(pool):
    x, _ = pool
    old, now, old_rows = grown_pool(x)
    assert (old_rows < 0).any() and len(now) < len(x)  # new rows and deletions
    before = knn_graph(x[old], k=10, device="cpu")
    grown = grow_graph(before, x[now], old_rows, k=10, device="cpu")
    rebuilt = knn_graph(x[now], k=10, device="cpu")
    np.testing.assert_array_equal(np.sort(grown.idx, 1), np.sort(rebuilt.idx, 1))
    np.testing.assert_allclose(np.sort(grown.sims, 1), np.sort(rebuilt.sims, 1), atol=1e-5)
    assert abs(grown.S - rebuilt.S).max() < 1e-5


def test_approximate_growth_recall(pool):
    x, _ = pool
    old, now, old_rows = grown_pool(x, seed=1)
    before = knn_graph(x[old], k=10, exact_max=500, device="cpu")
    # exact_pairs=0: IVF forward search and the list-based reverse update
    grown = grow_graph(before, x[now], old_rows, k=10, exact_max=500, device="cpu", exact_pairs=0)
    exact = knn_graph(x[now], k=10, device="cpu")
    assert (grown.idx >= 0).all() and not (grown.idx == np.arange(len(now))[:, None]).any()
    assert recall(grown.idx, exact.idx) >= 0.9
    # each row's list is sorted best first, without repeats
    assert (np.diff(grown.sims, axis=1) <= 1e-6).all()
    assert all(len(set(r)) == len(r) for r in grown.idx)


def test_topk_merge_drops_duplicates_and_missing():
    s, i = topk_merge(np.array([[0.9, 0.5]]), np.array([[3, 4]]),
                      np.array([[0.9, 0.7, 0.1]]), np.array([[3, -1, 5]]), 3)
    np.testing.assert_array_equal(i, [[3, 4, 5]])
    np.testing.assert_allclose(s, [[0.9, 0.5, 0.1]])


def test_with_embeddings_grows_the_graph(pool):
    x, _ = pool
    cfg = LearnerConfig(num_classes=8)
    cfg.propagation.k = 10
    old, now, old_rows = grown_pool(x, seed=2, deleted=0.0)
    learner = EmbeddingLearner(cfg, x[old], device="cpu")
    rebuilt = EmbeddingLearner(cfg, x[now], device="cpu").graph
    grown = learner.with_embeddings(x[now], known=old_rows)
    assert grown.version > learner.version
    np.testing.assert_array_equal(np.sort(grown.graph.idx, 1), np.sort(rebuilt.idx, 1))
    # a mask: the old rows, in their order, at the True positions
    mask = np.zeros(len(x), bool)
    mask[old] = True
    by_mask = learner.with_embeddings(x, known=mask)
    np.testing.assert_array_equal(np.sort(by_mask.graph.idx, 1),
                                  np.sort(knn_graph(x, k=10, device="cpu").idx, 1))
    # changed embeddings of known rows: a rebuild, not a growth from stale lists
    other = x[now] + 0.05 * np.random.default_rng(0).normal(size=x[now].shape).astype(np.float32)
    redone = learner.with_embeddings(other, known=old_rows)
    fresh = EmbeddingLearner(cfg, other, device="cpu").graph
    np.testing.assert_array_equal(redone.graph.idx, fresh.idx)
    with pytest.raises(ValueError, match="known"):
        learner.with_embeddings(x[now], known=old_rows[:-1])


def test_cold_start_above_spectral_max_covers_clusters(blobs):
    x, y = blobs(n_per=60, centers=8, dim=16, spread=0.08, seed=3)
    g = knn_graph(x, k=10, device="cpu")
    picks = cold_start(x, g, 8, seed=0, spectral_max=100)  # 480 items: the k-means path
    assert len(set(picks.tolist())) == 8 and len(set(y[picks])) == 8
    for p in picks:  # typical: nearer the centre of its cluster than the median member
        members = x[y == y[p]]
        centre = members.mean(0)
        assert np.linalg.norm(x[p] - centre) < np.median(np.linalg.norm(members - centre, axis=1))
    labeled = np.zeros(len(y), bool)
    labeled[picks[:4]] = True
    more = cold_start(x, g, 4, labeled, seed=0, spectral_max=100)
    assert not labeled[more].any()
    assert len(set(y[np.concatenate([picks[:4], more])])) == 8
    # deterministic for a seed
    np.testing.assert_array_equal(picks, cold_start(x, g, 8, seed=0, spectral_max=100))
