"""User-data edge cases the web app can hit: tiny pools, one class, bad labels, bad
TORCH_DEVICE. Each must give a sensible result or a clear ValueError."""

import numpy as np
import pytest

from mlcore.acquisition.coldstart import cold_start
from mlcore.acquisition.rank import rank
from mlcore.acquisition.scores import Margin, ScoreInputs
from mlcore.fast import fast_update
from mlcore.propagation import certainty_weights, knn_graph


def _unit(n, d=8, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_invalid_torch_device_is_a_clear_error(monkeypatch):
    import torch

    from mlcore.device import get_device
    monkeypatch.setenv("TORCH_DEVICE", "foo")
    with pytest.raises(ValueError, match="TORCH_DEVICE"):
        get_device()
    monkeypatch.setenv("TORCH_DEVICE", " CPU ")
    assert get_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("TORCH_DEVICE", "cuda")
        with pytest.raises(ValueError, match="CUDA"):
            get_device()
    monkeypatch.delenv("TORCH_DEVICE")
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_one_class_certainty_and_margin():
    p = np.ones((4, 1), np.float32)
    assert np.array_equal(certainty_weights(p), np.ones(4, np.float32))
    s = Margin().score(ScoreInputs(probs=p, rng=np.random.default_rng(0)))
    assert s.shape == (4,) and np.isfinite(s).all()
    emb = _unit(10)
    g = knn_graph(emb, 5, device="cpu")
    labels = -np.ones(10, np.int64)
    labels[0] = 0
    res = fast_update(emb, g, labels, 1)
    assert np.isfinite(res.probs).all() and np.isfinite(res.certainty).all()
    q = rank(res.probs, emb, labels, 3, "margin")
    assert len(set(q.tolist())) == 3 and (labels[q] == -1).all()


def test_bad_labels_raise_value_error():
    emb = _unit(20)
    g = knn_graph(emb, 5, device="cpu")
    labels = -np.ones(20, np.int64)
    labels[0] = 5
    with pytest.raises(ValueError, match="labels"):
        fast_update(emb, g, labels, 2)
    with pytest.raises(ValueError, match="pool"):
        fast_update(emb, g, -np.ones(10, np.int64), 2)
    with pytest.raises(ValueError, match="integers"):
        fast_update(emb, g, np.full(20, 0.5), 2)
    ok = -np.ones(20)
    ok[0] = 1.0  # whole-valued floats are accepted
    assert fast_update(emb, g, ok, 2).probs[0, 1] == 1


@pytest.mark.parametrize("n_items", [1, 2, 3, 5])
def test_cold_start_tiny_pools(n_items):
    emb = _unit(n_items)
    g = knn_graph(emb, 10, device="cpu")
    for n in (1, 3, 50):
        with np.errstate(all="raise"):  # typicality of a 1-item pool has no neighbours
            q = cold_start(emb, g, n)
        assert len(q) == min(n, n_items) and len(set(q.tolist())) == len(q)


def test_select_diverse_nonpositive_n():
    from mlcore.acquisition.diversity import select_diverse
    assert len(select_diverse(_unit(10), np.random.default_rng(0).random(10), -3, 10)) == 0


def test_learner_tiny_pool_one_class(tmp_path):
    from mlcore.learner import ActiveLearner
    from mlcore.presets import recommended_config
    imgs = np.random.default_rng(0).integers(0, 255, (6, 40, 40, 3), dtype=np.uint8)
    learner = ActiveLearner(recommended_config(2, 40, 3, gpu=False), imgs, device="cpu")
    learner.pretrain(time_budget_s=0.5)
    labels = -np.ones(6, np.int64)
    first = learner.rank(20, labels)
    assert sorted(first.tolist()) == list(range(6))
    labels[[0, 1]] = 0  # labels of only one class
    probs = learner.fast_update(labels)
    assert np.isfinite(probs).all() and np.allclose(probs.sum(1), 1, atol=1e-5)
    q = learner.rank(3, labels, "margin")
    assert (labels[q] == -1).all() and len(set(q.tolist())) == len(q)
    with pytest.raises(ValueError, match="labels"):
        learner.rank(3, labels[:3], "margin")
    p = str(tmp_path / "c.ckpt")
    learner.save(p, labels)
    again = ActiveLearner.load(p, imgs, device="cpu")
    assert np.allclose(again.predict(imgs[:2]), learner.predict(imgs[:2]), atol=1e-5)
    with pytest.raises(ValueError, match="device"):
        ActiveLearner(learner.cfg, imgs, device="nonsense")


def test_an_untrained_learner_says_what_to_call_first():
    import numpy as np
    import pytest

    from mlcore.learner import ActiveLearner
    from mlcore.presets import recommended_config

    learner = ActiveLearner(recommended_config(num_classes=2, image_size=28, channels=1),
                            np.zeros((4, 28, 28), np.uint8), device="cpu")
    labels = np.array([0, -1, -1, 1])
    for call in (lambda: learner.rank(2, labels), lambda: learner.fast_update(labels),
                 lambda: learner.save("/nonexistent/x.ckpt")):
        with pytest.raises(RuntimeError, match="pretrain"):
            call()
