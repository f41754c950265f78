"""One-vs-rest propagation for multi-label pools, checked against a naive reference: per class,
a dense solve of (I - alpha S) z = y for its positives and for its negatives, p = z+ / (z+ + z-)."""
import numpy as np
import pytest

from mlcore.config import AcquisitionConfig, LearnerConfig, PropagationConfig
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.multilabel import (
    apply_calibration,
    calibrate_classes,
    check_targets,
    heldout_sets,
    propagate_sets,
    rank_sets,
    set_scores,
    set_uncertainty,
)
from mlcore.propagation import knn_graph

EXACT = PropagationConfig(cg_iters=500, cg_tol=1e-12)


def _naive(S, targets, labeled, alpha):
    """Each class alone: two dense solves, then the ratio; unreached rows get the class's share."""
    dense = np.eye(S.shape[0]) - alpha * S.toarray().astype(np.float64)
    n, c = targets.shape
    out = np.zeros((n, c))
    for j in range(c):
        pos = np.where(labeled, targets[:, j], 0.0)
        neg = np.where(labeled, 1.0 - targets[:, j], 0.0)
        zp = np.linalg.solve(dense, pos).clip(0, None)
        zn = np.linalg.solve(dense, neg).clip(0, None)
        prior = targets[labeled, j].mean() if labeled.any() else 0.5
        out[:, j] = np.where(zp + zn > 0, zp / np.maximum(zp + zn, 1e-30), prior)
    return out


def _tiny(blobs, seed=0, spread=0.3):
    """Three blobs; class 0 = blob 0 or 1, class 1 = blob 1 or 2, class 2 = blob 2 only: sets
    of size 1 or 2 that co-occur."""
    x, y = blobs(n_per=12, centers=3, spread=spread, seed=seed)
    truth = np.stack([(y == 0) | (y == 1), (y == 1) | (y == 2), y == 2], 1).astype(np.float32)
    return x, y, truth


def test_propagation_matches_the_dense_per_class_reference(blobs):
    x, _y, truth = _tiny(blobs)
    graph = knn_graph(x, k=6, device="cpu")
    labeled = np.zeros(len(x), bool)
    labeled[::4] = True
    probs, reached = propagate_sets(graph, truth, labeled, 3, EXACT)
    naive = _naive(graph.S, truth, labeled, EXACT.alpha)
    naive[labeled] = truth[labeled]
    np.testing.assert_allclose(probs, naive, atol=1e-4)
    assert reached.all() and probs.min() >= 0 and probs.max() <= 1


def test_probabilities_are_per_class_not_a_softmax(blobs):
    x, y, truth = _tiny(blobs, spread=0.1)
    graph = knn_graph(x, k=6, device="cpu")
    labeled = np.zeros(len(x), bool)
    labeled[::3] = True
    probs, _ = propagate_sets(graph, truth, labeled, 3)
    open_rows = ~labeled
    # blob 1 carries two classes: both are likely at once (their sum is far above 1)
    both = open_rows & (y == 1)
    assert (probs[both, 0] >= 0.5).all() and (probs[both, 1] >= 0.5).all()
    assert ((probs[open_rows] >= 0.5) == (truth[open_rows] > 0)).mean() > 0.9


def test_an_empty_set_is_an_answer_and_nothing_answered_gives_the_prior(blobs):
    x, _y, truth = _tiny(blobs)
    graph = knn_graph(x, k=6, device="cpu")
    none = np.zeros_like(truth)
    labeled = np.zeros(len(x), bool)
    labeled[:5] = True
    probs, _ = propagate_sets(graph, none, labeled, 3, EXACT)
    assert probs.max() == 0.0  # only "none applies" answers: no class anywhere
    probs, reached = propagate_sets(graph, truth, np.zeros(len(x), bool), 3, EXACT)
    assert np.all(probs == 0.5) and not reached.any()


def test_heldout_hides_each_answer_from_its_own_prediction(blobs):
    x, _y, truth = _tiny(blobs)
    graph = knn_graph(x, k=6, device="cpu")
    labeled = np.zeros(len(x), bool)
    labeled[::2] = True
    rows, probs = heldout_sets(graph, truth, labeled, 3, EXACT, folds=3, seed=5)
    assert list(rows) == list(np.where(labeled)[0])
    order = np.random.default_rng(5).permutation(np.where(labeled)[0])
    for f in range(3):
        held = order[f::3]
        train = labeled.copy()
        train[held] = False
        naive = _naive(graph.S, truth, train, EXACT.alpha)
        for i in held:
            np.testing.assert_allclose(probs[list(rows).index(i)], naive[i], atol=1e-4)


def test_scores_follow_per_class_uncertainty():
    P = np.array([[0.5, 0.0], [0.9, 0.1], [0.6, 0.99], [0.02, 0.98]], np.float32)
    rng = np.random.default_rng(0)
    margin = set_scores(P, "margin", rng)
    entropy = set_scores(P, "entropy", rng)
    assert margin.argmax() == 0
    h = lambda p: -(p * np.log(p) + (1 - p) * np.log(1 - p)) if 0 < p < 1 else 0.0  # noqa: E731
    np.testing.assert_allclose(entropy, [np.mean([h(a), h(b)]) for a, b in P.astype(np.float64)], atol=1e-5)
    assert list(np.argsort(-entropy)) == [2, 0, 1, 3]  # two doubtful classes outweigh one at 0.5
    assert margin[2] > margin[1] > margin[3]  # 0.6 is nearer 0.5 than 0.9 or 0.98
    np.testing.assert_allclose(set_uncertainty(P)[0], (1.0 + 0.0) / 2, atol=1e-6)
    labeled = np.array([True, False, False, False])
    emb = np.eye(4, dtype=np.float32)
    picked = rank_sets(P, emb, labeled, 2, "margin", AcquisitionConfig(candidates_factor=1))
    assert list(picked) == [2, 1]  # the answered row 0 is never asked again


def test_bad_arrays_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="shape"):
        check_targets(np.zeros((3, 2)), np.zeros(3, bool), 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_targets(np.full((3, 2), 2.0), np.zeros(3, bool), 2)
    with pytest.raises(ValueError, match="bool"):
        check_targets(np.zeros((3, 2)), np.zeros(3, int), 2)


def test_the_learner_ranks_and_predicts_sets(blobs):
    x, _y, truth = _tiny(blobs)
    cfg = LearnerConfig(num_classes=3)
    cfg.propagation.k = 6
    cfg.acquisition.cold_start_until = 0
    learner = EmbeddingLearner(cfg, x, device="cpu")
    labeled = np.zeros(len(x), bool)
    first = learner.rank_sets(4, truth, labeled)  # nothing answered: the cold start
    assert len(first) == 4 and len(set(first.tolist())) == 4
    labeled[first] = True
    labeled[::5] = True
    probs = learner.fast_update_sets(truth, labeled)
    assert probs.shape == (len(x), 3) and learner.last.certainty.shape == (len(x),)
    nxt = learner.rank_sets(5, truth, labeled)
    assert not labeled[nxt].any()
    rows, held = learner.heldout_sets(truth, labeled)
    assert held.shape == (labeled.sum(), 3)


def test_platt_scaling_per_class_against_a_brute_force_fit():
    """Each class's (a, b) minimise its own ridge-penalised log-loss (a grid search agrees);
    a class without enough answers keeps the identity; the columns stay independent."""
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, size=(200, 2))
    truth = np.stack([rng.random(200) < p[:, 0] ** 3, np.zeros(200, bool)], 1)  # class 0 overconfident
    params = calibrate_classes(p, truth)
    assert params[1].tolist() == [1.0, 0.0]  # no positive at all: untouched
    x = np.log(p[:, 0] / (1 - p[:, 0]))

    def loss(a, b):
        q = 1 / (1 + np.exp(-(a * x + b)))
        y = truth[:, 0]
        return -(y * np.log(q) + (1 - y) * np.log(1 - q)).sum() + 0.5 * ((a - 1) ** 2 + b ** 2)

    grid = [(loss(a, b), a, b) for a in np.linspace(0, 4, 81) for b in np.linspace(-4, 2, 121)]
    _best, a, b = min(grid)
    assert params[0] == pytest.approx([a, b], abs=0.06)
    assert loss(*params[0]) <= min(grid)[0] + 1e-6
    out = apply_calibration(p, params)
    assert out.shape == p.shape and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out[:, 1], p[:, 1], atol=1e-5)


def test_the_benchmark_runs_and_calibration_does_not_hurt_on_easy_blobs():
    from mlcore.bench_multilabel import measure

    m = measure(0.2, 60, seeds=1)
    assert m["exact_calibrated"] >= m["exact_raw"] - 0.02 and m["exact_calibrated"] > 0.8
