"""The geometry-aware acquisition strategies (mlcore.acquisition.strategies) against naive
per-item references on tiny seeded pools: density-weighted margin, ProbCover coverage
(plain and margin-weighted), BADGE's k-means++ over explicit gradient embeddings, and
graph expected error reduction by actually re-propagating every answer."""
import gzip

import numpy as np
import pytest

from mlcore import bench_acquisition
from mlcore.acquisition.rank import REGISTRY, rank
from mlcore.acquisition.scores import ScoreInputs
from mlcore.acquisition.strategies import (
    BADGE,
    Coverage,
    CoverageMargin,
    DensityMargin,
    ExpectedErrorReduction,
    badge_select,
    ball_matrix,
    expected_risk,
)
from mlcore.config import PropagationConfig
from mlcore.propagation import knn_graph, label_matrix, probabilities, propagate


def _pool(n=60, d=6, classes=3, seed=0):
    """Unit embeddings in ``classes`` blobs of uneven spread, their classes, and noisy
    probabilities (N, classes)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * 2
    y = np.arange(n) % classes
    x = centres[y] + rng.normal(size=(n, d)) * rng.uniform(0.3, 1.5, size=(n, 1))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    logits = rng.normal(size=(n, classes)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return x, y, p


def _inputs(p, x, labels, graph=None, prop=None, seed=0):
    return ScoreInputs(probs=p, rng=np.random.default_rng(seed), emb=x, labels=labels, graph=graph,
                       propagation=prop)


def test_density_margin_is_uncertainty_times_knn_density_item_by_item():
    x, _, p = _pool()
    g = knn_graph(x, k=5, device="cpu")
    labels = np.full(len(x), -1)
    got = DensityMargin().score(_inputs(p, x, labels, g))
    # naive: typicality = 1 / mean Euclidean distance to the 5 neighbours, max-scaled
    dens = []
    for i in range(len(x)):
        d = [float(np.sqrt(max(2 - 2 * float(x[i] @ x[j]), 0))) for j in g.idx[i]]
        dens.append(1 / (sum(d) / len(d) + 1e-8))
    dens = np.array(dens) / max(dens)
    naive = [(1 - (sorted(row)[-1] - sorted(row)[-2])) * dens[i] for i, row in enumerate(p)]
    assert np.allclose(got, naive, rtol=1e-5)
    # the item asked first is the naive argmax (among the unlabelled)
    best = int(np.argmax(naive))
    labels[best] = 0
    assert rank(p, x, labels, 1, "density-margin", graph=g).tolist() == [int(np.argsort(naive)[-2])]


def test_an_uncertain_outlier_waits_behind_an_equally_uncertain_dense_item():
    x, _, p = _pool(n=30)
    g = knn_graph(x, k=5, device="cpu")
    typ_order = np.argsort(DensityMargin().score(_inputs(np.full_like(p, 1 / 3), x, None, g)))
    sparse, dense = int(typ_order[0]), int(typ_order[-1])
    p = np.tile([0.9, 0.05, 0.05], (len(x), 1))
    p[[sparse, dense]] = [0.5, 0.5, 0.0]  # both equally uncertain
    assert rank(p, x, np.full(len(x), -1), 1, "density-margin", graph=g).tolist() == [dense]


def _naive_coverage(a, free, w, n):
    """Greedy max coverage by explicit sets."""
    balls = [set(np.nonzero(a[i])[0].tolist()) for i in range(len(a))]
    covered = set().union(*[balls[i] for i in np.where(~free)[0]]) if (~free).any() else set()
    free = free.copy()
    picks = []
    for _ in range(n):
        gains = [sum(w[j] for j in balls[i] - covered) if free[i] else -1 for i in range(len(a))]
        i = int(np.argmax(gains))
        picks.append(i)
        free[i] = False
        covered |= balls[i]
    return picks


@pytest.mark.parametrize("cls", [Coverage, CoverageMargin])
def test_coverage_picks_the_balls_a_naive_greedy_set_cover_picks(cls):
    x, y, p = _pool(n=50, seed=2)
    g = knn_graph(x, k=6, device="cpu")
    a = ball_matrix(g).toarray()
    # naive balls: i ~ j when one is in the other's list with similarity >= the median
    tau = np.median(g.sims)
    naive_a = np.eye(len(x))
    for i in range(len(x)):
        for j, s in zip(g.idx[i], g.sims[i]):
            if s >= tau:
                naive_a[i, j] = naive_a[j, i] = 1
    assert np.array_equal(a, naive_a)
    labels = np.full(len(x), -1)
    labels[[0, 7]] = y[[0, 7]]
    w = 1 - (np.sort(p, 1)[:, -1] - np.sort(p, 1)[:, -2]) if cls.weighted else np.ones(len(x))
    got = cls().select(_inputs(p, x, labels, g), 6)
    assert got.tolist() == _naive_coverage(naive_a, labels < 0, w, 6)


def test_badge_first_pick_is_the_largest_gradient_and_the_rest_follow_kmeanspp_draws():
    x, _, p = _pool(n=40, seed=3)
    free = np.ones(len(x), bool)
    free[[1, 2]] = False
    got = badge_select(p, x, free, 6, np.random.default_rng(5))
    # naive: explicit gradient embeddings (p - onehot(argmax p)) (x) x, and D^2 sampling
    grads = []
    for i in range(len(x)):
        a = p[i].copy()
        a[np.argmax(p[i])] -= 1
        grads.append(np.outer(a, x[i]).ravel())
    grads = np.array(grads)
    norms = np.where(free, (grads ** 2).sum(1), -1)
    picks = [int(np.argmax(norms))]
    rng = np.random.default_rng(5)
    while len(picks) < 6:
        d2 = np.array([min(((grads[i] - grads[j]) ** 2).sum() for j in picks) if free[i] else 0.0
                       for i in range(len(x))])
        cum = np.cumsum(d2)
        picks.append(int(np.searchsorted(cum, rng.random() * cum[-1])))
    assert got.tolist() == picks
    assert len(set(picks)) == 6 and free[picks].all()
    # through rank: the same strategy, labelled items excluded
    labels = np.where(free, -1, 0)
    assert BADGE().select(_inputs(p, x, labels, seed=5), 6).tolist() == picks


@pytest.mark.parametrize("balanced", [True, False])
def test_expected_risk_equals_relabelling_and_propagating_again(balanced):
    x, y, p = _pool(n=45, seed=4)
    g = knn_graph(x, k=6, device="cpu")
    prop = PropagationConfig(k=6, balance_labels=balanced, cg_iters=200, cg_tol=1e-12)
    labels = np.full(len(x), -1)
    labels[[0, 1, 2, 5]] = y[[0, 1, 2, 5]]
    free = labels < 0
    cand = np.array([3, 10, 20, 33])
    Z = propagate(g.S, label_matrix(labels, 3, balance=balanced), prop.alpha, prop.cg_iters, prop.cg_tol)
    E = np.zeros((len(x), len(cand)))
    E[cand, np.arange(len(cand))] = 1
    G = propagate(g.S, E, prop.alpha, prop.cg_iters, prop.cg_tol)
    counts = np.bincount(labels[labels >= 0], minlength=3).astype(float)
    got = expected_risk(Z.astype(float), G.astype(float), counts, p[cand], free, balanced, cand)
    for m, j in enumerate(cand):
        naive = 0.0
        for c in range(3):
            lab = labels.copy()
            lab[j] = c
            Zc = propagate(g.S, label_matrix(lab, 3, balance=balanced), prop.alpha, prop.cg_iters, prop.cg_tol)
            conf = probabilities(Zc).max(1)
            naive += p[j, c] * sum(1 - conf[i] for i in range(len(x)) if lab[i] < 0)
        assert got[m] == pytest.approx(naive, rel=1e-4)


def test_eer_asks_for_the_item_that_settles_an_unlabelled_cluster():
    # two labelled clusters and a third nobody labelled: its centre lowers the risk most
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8) * 3
    x = np.concatenate([c + rng.normal(size=(15, 8)) * 0.3 for c in centres])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    g = knn_graph(x, k=5, device="cpu")
    labels = np.full(len(x), -1)
    labels[[0, 15]] = [0, 1]
    prop = PropagationConfig(k=5, balance_labels=True)
    Z = propagate(g.S, label_matrix(labels, 3, balance=True), prop.alpha)
    p = probabilities(Z)
    scores = ExpectedErrorReduction().score(_inputs(p, x, labels, g, prop))
    assert np.isfinite(scores).sum() == len(x) - 2 and np.isinf(scores[[0, 15]]).all()
    assert 30 <= int(np.argmax(scores)) < 45


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_strategy_returns_n_distinct_unlabelled_items(name):
    x, y, p = _pool(n=50, seed=6)
    labels = np.full(len(x), -1)
    labels[:5] = y[:5]
    mc = np.stack([p, p[::-1]])
    picks = rank(p, x, labels, 4, name, mc_fn=lambda: mc, propagation=PropagationConfig(k=6))
    assert len(set(picks.tolist())) == 4 and (labels[picks] < 0).all()


def test_the_acquisition_benchmark_runs_a_tiny_digits_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = np.clip(np.eye(3, 64)[y] * 12 + rng.normal(size=(90, 64)) * 2 + 4, 0, 16).round()
    path = tmp_path / "digits.csv.gz"
    path.write_bytes(gzip.compress("\n".join(",".join(f"{v:g}" for v in [*row, c]) for row, c in zip(x, y)).encode()))
    runs = bench_acquisition.main(["--data", f"digits:{path}", "--seeds", "0", "--strategies", "margin,random",
                                   "--cold-start", "1", "--budget", "12", "--batch", "3", "--points", "6,12"])
    assert set(runs) == {"cs1+margin", "random", "cs1+random"}
    for r in runs.values():
        assert sorted(r[0]["curve"]) == [3, 6, 9, 12] and all(0 <= a <= 1 for a in r[0]["curve"].values())
    assert runs["cs1+margin"][0]["first_batch_classes"] == 3  # the cold start covers the blobs
    assert "cs1+margin" in capsys.readouterr().out
