"""EmbeddingLearner: the loop on precomputed embeddings (a frozen backbone's), checked
against the ActiveLearner path it shares and against what clustered data must give."""
import numpy as np
import pytest

from mlcore.checkpoint import load_checkpoint
from mlcore.embedding_learner import EmbeddingLearner, unit_rows
from mlcore.presets import recommended_config


def clusters(n_per=60, classes=3, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 4
    emb = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres])
    truth = np.repeat(np.arange(classes), n_per)
    return emb.astype(np.float32), truth


def cfg(classes=3):
    return recommended_config(classes, 224, 3)


def few_labels(truth, per_class=2, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.full(len(truth), -1)
    for c in np.unique(truth):
        labels[rng.choice(np.where(truth == c)[0], per_class, replace=False)] = c
    return labels


def test_it_propagates_a_few_labels_over_clusters():
    emb, truth = clusters()
    learner = EmbeddingLearner(cfg(), emb, device="cpu")
    probs = learner.fast_update(few_labels(truth))
    assert probs.shape == (len(truth), 3)
    assert (probs.argmax(1) == truth).mean() > 0.95
    np.testing.assert_allclose(np.linalg.norm(learner.embeddings, axis=1), 1, atol=1e-5)


def test_the_cold_start_covers_every_cluster_and_rank_skips_labelled_items():
    emb, truth = clusters()
    learner = EmbeddingLearner(cfg(), emb, device="cpu")
    first = learner.cold_start(6)
    assert set(truth[first]) == {0, 1, 2}
    labels = few_labels(truth)
    queue = learner.rank(10, labels, strategy="margin")
    assert len(set(queue)) == 10 and (labels[queue] == -1).all()


def test_it_matches_the_active_learner_on_the_same_embeddings():
    """The fast path of an ActiveLearner is this learner's: same embeddings, same result."""
    import torch

    from mlcore.learner import ActiveLearner

    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, size=(120, 20, 20), dtype=np.uint8)
    c = recommended_config(3, 20, 1)
    c.pretrain.epochs = 1
    torch.manual_seed(0)
    active = ActiveLearner(c, images, device="cpu")
    active.pretrain(time_budget_s=5)
    labels = np.full(120, -1)
    labels[[0, 1, 2, 3, 4, 5]] = [0, 1, 2, 0, 1, 2]
    plain = EmbeddingLearner(c, active.embeddings, device="cpu")
    np.testing.assert_allclose(plain.fast_update(labels), active.fast_update(labels), atol=1e-5)
    np.testing.assert_array_equal(plain.cold_start(5), active.cold_start(5))


def test_a_checkpoint_round_trips_without_the_embeddings(tmp_path):
    emb, truth = clusters()
    learner = EmbeddingLearner(cfg(), emb, device="cpu")
    labels = few_labels(truth)
    probs = learner.fast_update(labels)
    path = str(tmp_path / "learner.pt")
    learner.save(path, labels, meta={"encoder": "resnet18"})
    ck = load_checkpoint(path)
    assert "emb" not in ck["arrays"] and ck["meta"]["encoder"] == "resnet18"
    again = EmbeddingLearner.load(path, emb, device="cpu")
    np.testing.assert_array_equal(again.labels, labels)
    np.testing.assert_allclose(again.fast_update(labels), probs, atol=1e-6)
    with pytest.raises(ValueError, match="graph has 180 rows but 179"):
        EmbeddingLearner.load(path, emb[:-1], device="cpu")


def test_growing_and_changing_classes():
    emb, truth = clusters()
    learner = EmbeddingLearner(cfg(), emb[:150], device="cpu")
    grown = learner.with_embeddings(emb)
    assert len(grown.embeddings) == 180 and grown.version > learner.version
    np.testing.assert_allclose(grown.embeddings[:150], learner.embeddings, atol=1e-6)
    shared = grown.cfg
    grown.fast_update(few_labels(truth))
    grown.set_num_classes(4, cold_start_until=40)
    assert grown.num_classes == 4 and grown.last is None and shared.num_classes == 3
    assert grown.fast_update(few_labels(truth)).shape == (180, 4)


def test_unit_rows_keeps_zero_rows():
    out = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    with pytest.raises(RuntimeError, match="no embeddings"):
        EmbeddingLearner(cfg()).fast_update(np.array([-1]))
