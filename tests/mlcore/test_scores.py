import math

import numpy as np
import pytest

from mlcore.acquisition.scores import STRATEGIES, ScoreInputs


def inputs(p, mc=None):
    return ScoreInputs(probs=np.asarray(p, float), rng=np.random.default_rng(0),
                       mc_fn=None if mc is None else (lambda: np.asarray(mc, float)))


def test_entropy_margin_least_confidence():
    p = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1]]
    ent = STRATEGIES["entropy"]().score(inputs(p))
    naive = [-sum(q * math.log(q) for q in row if q > 0) for row in p]
    np.testing.assert_allclose(ent, naive, atol=1e-9)
    mar = STRATEGIES["margin"]().score(inputs(p))
    np.testing.assert_allclose(mar, [-1.0, 0.0, 0.0, -0.3], atol=1e-9)
    lc = STRATEGIES["least-confidence"]().score(inputs(p))
    np.testing.assert_allclose(lc, [0.0, 0.5, 2 / 3, 0.4], atol=1e-9)


def test_bald_hand_built_mc_samples():
    # item 0: every pass agrees and is confident -> 0
    # item 1: passes confidently disagree (half class 0, half class 1) -> log 2
    # item 2: every pass uncertain in the same way (aleatoric) -> 0
    T = 4
    mc = np.zeros((T, 3, 2))
    mc[:, 0] = [1.0, 0.0]
    mc[:2, 1] = [1.0, 0.0]
    mc[2:, 1] = [0.0, 1.0]
    mc[:, 2] = [0.5, 0.5]
    s = STRATEGIES["bald"]().score(inputs(mc.mean(0), mc))
    np.testing.assert_allclose(s, [0.0, math.log(2), 0.0], atol=1e-6)


def test_bald_matches_naive_on_random_samples():
    rng = np.random.default_rng(1)
    mc = rng.dirichlet(np.ones(4), size=(5, 6))  # (T, N, C)
    s = STRATEGIES["bald"]().score(inputs(mc.mean(0), mc))
    for i in range(6):
        mean = mc[:, i].mean(0)
        h_mean = -sum(q * math.log(q) for q in mean)
        mean_h = np.mean([-sum(q * math.log(q) for q in mc[t, i]) for t in range(5)])
        assert abs(s[i] - (h_mean - mean_h)) < 1e-9


def test_bald_without_samples_raises():
    with pytest.raises(ValueError):
        STRATEGIES["bald"]().score(inputs([[0.5, 0.5]]))


def test_registry_shares_one_signature():
    p = np.random.default_rng(0).dirichlet(np.ones(3), size=10)
    mc = np.stack([p] * 3)
    for name, cls in STRATEGIES.items():
        s = cls().score(inputs(p, mc))
        assert s.shape == (10,), name
