"""The public methods the web app drives the learner with (instead of its attributes):
each checked against the attribute code it replaces."""

import copy
import os

import numpy as np
import pytest
import torch

from mlcore.checkpoint import load_checkpoint, save_checkpoint
from mlcore.config import EncoderConfig, FinetuneConfig, LearnerConfig, PretrainConfig, PropagationConfig
from mlcore.fast import heldout_probabilities
from mlcore.learner import ActiveLearner
from mlcore.models.heads import ClassifierHead

N = 100


def tiny_cfg():
    return LearnerConfig(
        encoder=EncoderConfig(input_size=16, widths=(8, 16, 32)),
        pretrain=PretrainConfig(epochs=1, batch_size=50),
        propagation=PropagationConfig(k=8),
        finetune=FinetuneConfig(steps=3, batch_size=8, unlabeled_ratio=1, head_warmup_steps=0,
                                validate=False),
        seed=0)


@pytest.fixture
def data(mnist_small):
    x, y = mnist_small
    return x[:N + 30], y[:N + 30]


@pytest.fixture
def learner(data):
    x, _ = data
    lrn = ActiveLearner(tiny_cfg(), x[:N], device="cpu")
    assert not lrn.has_encoder
    lrn.pretrain()
    assert lrn.has_encoder
    return lrn


@pytest.fixture
def labels(data):
    y = data[1][:N]
    lab = -np.ones(N, np.int64)
    lab[:30] = y[:30]
    return lab


def weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_read_only_properties(learner):
    assert learner.num_classes == learner.cfg.num_classes == 10
    with pytest.raises(AttributeError):
        learner.has_encoder = False
    with pytest.raises(AttributeError):
        learner.num_classes = 3


def test_with_pool_keeps_encoder_and_embeds_the_grown_pool(learner, data):
    x, _ = data
    before_emb, before_version = learner.emb.copy(), learner.version
    grown = learner.with_pool(x)
    # as the app's grow(): the same (shared) modules, version old + 1, then _refresh's + 1
    assert grown is not learner
    assert grown.encoder is learner.encoder and grown.proj is learner.proj and grown.head is learner.head
    assert grown.version == before_version + 2
    assert grown.emb.shape == (len(x), before_emb.shape[1]) and len(grown.graph.idx) == len(x)
    assert np.allclose(grown.emb[:N], before_emb, atol=1e-5)
    assert np.allclose(grown.emb[N:], learner.embed(x[N:]), atol=1e-5)
    assert grown.last is None
    # the old learner is left as it was
    assert np.array_equal(learner.emb, before_emb) and learner.version == before_version
    with pytest.raises(RuntimeError, match="no encoder"):
        ActiveLearner(tiny_cfg(), x, device="cpu").with_pool(x)


def test_with_pool_and_known_rows_embeds_only_the_new_images(learner, data, monkeypatch):
    """An import with ``known``: the old rows keep their vectors, only the new ones go
    through the encoder, and the grown graph equals a rebuild (below exact_max)."""
    import mlcore.learner as learner_module

    x, _ = data
    order = np.random.default_rng(0).permutation(len(x))  # old rows shuffled among new ones
    known = np.where(order < N, order, -1)
    full = learner.with_pool(x[order])
    seen = []
    real_embed = learner_module.embed
    monkeypatch.setattr(learner_module, "embed", lambda enc, imgs, *a, **k: seen.append(len(imgs)) or real_embed(
        enc, imgs, *a, **k))
    grown = learner.with_pool(x[order], known=known)
    assert seen == [len(x) - N]
    assert grown.version == full.version == learner.version + 2
    np.testing.assert_allclose(grown.emb, full.emb, atol=1e-5)
    np.testing.assert_array_equal(np.sort(grown.graph.idx, axis=1), np.sort(full.graph.idx, axis=1))


@pytest.mark.parametrize("method", ["self_training", "fixmatch"])
def test_clone_is_independent(learner, labels, method):
    learner.cfg.finetune.method = method
    learner.fast_update(labels)
    learner.cold_start(5)  # fills the original's cold-start cache
    enc, proj = weights(learner.encoder), weights(learner.proj)
    emb, graph, version = learner.emb.copy(), learner.graph, learner.version
    clone = learner.clone()
    assert clone.encoder is not learner.encoder and clone.proj is not learner.proj
    assert same_weights(weights(clone.encoder), enc)
    assert clone._spectral == {} and learner._spectral
    with torch.no_grad():
        for p in clone.encoder.parameters():
            p.add_(1.0)
        for p in clone.proj.parameters():
            p.add_(1.0)
    assert same_weights(weights(learner.encoder), enc) and same_weights(weights(learner.proj), proj)
    # the slow path on the clone replaces its own state only
    before = weights(clone.encoder)
    clone.finetune(labels)
    assert not same_weights(weights(clone.encoder), before)  # the clone's encoder trained
    assert (clone.head is not None) == (method == "fixmatch") and learner.head is None
    assert same_weights(weights(learner.encoder), enc)
    assert np.array_equal(learner.emb, emb) and learner.graph is graph and learner.version == version
    assert clone.version > version


def test_adopt_takes_the_clones_model(learner, labels, data):
    learner.fast_update(labels)
    clone = learner.clone()
    clone.finetune(labels)
    learner.version += 5  # the original moved on meanwhile (e.g. restore)
    expected = max(learner.version, clone.version) + 1
    learner.adopt(clone)
    assert learner.encoder is clone.encoder and learner.head is clone.head and learner.proj is clone.proj
    assert learner.emb is clone.emb and learner.graph is clone.graph
    assert learner.version == expected and learner.last is None
    assert learner.fast_update(labels).shape == (N, 10)
    # a clone of another pool cannot be adopted
    other = learner.with_pool(data[0])
    with pytest.raises(ValueError, match="pool"):
        learner.adopt(other)


def test_save_with_meta_round_trips(learner, labels, data, tmp_path):
    x = data[0][:N]
    probs = learner.fast_update(labels)
    p = str(tmp_path / "learner.pt")
    meta = {"classes": ["a", "b"], "side": 28, "channels": 1, "pool_index_file": "pool_index.npy",
            "version": -1}
    learner.save(p, labels, meta=meta)
    assert os.listdir(tmp_path) == ["learner.pt"]  # atomic write: no temporary left
    ck = load_checkpoint(p)
    assert ck["meta"] == {**meta, "version": learner.version}
    assert np.array_equal(ck["arrays"]["labels"], labels)
    assert {"encoder", "proj"} <= set(ck["state"]) and "probs" in ck["arrays"]
    again = ActiveLearner.load(p, x, device="cpu")
    assert again.version == learner.version and np.array_equal(again.labels, labels)
    assert np.array_equal(again.emb, learner.emb)
    assert np.array_equal(again.graph.idx, learner.graph.idx)
    assert np.allclose(again.last.probs, probs)
    assert same_weights(weights(again.encoder), weights(learner.encoder))
    assert same_weights(weights(again.proj), weights(learner.proj))
    learner.save(p)  # meta is optional
    assert load_checkpoint(p)["meta"] == {"version": learner.version}


def test_load_reads_the_apps_older_files(learner, labels, data, tmp_path):
    """Files the app wrote itself: no "proj", no "probs", a head."""
    x = data[0][:N]
    head = ClassifierHead(learner.encoder.out_dim, learner.num_classes, learner.cfg.encoder.dropout)
    p = str(tmp_path / "old.pt")
    save_checkpoint(p, learner.cfg, {"encoder": learner.encoder.state_dict(), "head": head.state_dict()},
                    {"emb": learner.emb, "graph_idx": learner.graph.idx, "graph_sims": learner.graph.sims,
                     "labels": labels},
                    {"version": 7, "classes": ["a"], "side": 28, "channels": 1,
                     "pool_index_file": "pool_index.npy"})
    again = ActiveLearner.load(p, x, device="cpu")
    assert again.proj is None and again.last is None and again.version == 7
    assert same_weights(weights(again.head), weights(head))
    assert np.array_equal(again.labels, labels) and np.array_equal(again.emb, learner.emb)
    assert np.allclose(again.fast_update(labels), learner.fast_update(labels), atol=1e-6)


def test_set_num_classes_copies_the_config(learner, labels):
    cfg = learner.cfg
    shared = copy.copy(learner)  # e.g. a clone: the same cfg object
    learner.fast_update(labels)
    learner.set_num_classes(4, 40)
    assert learner.num_classes == 4 and learner.cfg.acquisition.cold_start_until == 40
    assert learner.cfg is not cfg and learner.cfg.acquisition is not cfg.acquisition
    assert cfg.num_classes == 10 and cfg.acquisition.cold_start_until == 30
    assert shared.num_classes == 10
    assert learner.head is None and learner.last is None
    four = np.where(labels < 4, labels, -1)
    assert learner.fast_update(four).shape == (N, 4)
    learner.set_num_classes(3)  # cold_start_until unchanged
    assert learner.num_classes == 3 and learner.cfg.acquisition.cold_start_until == 40
    with pytest.raises(ValueError):
        learner.set_num_classes(0)


def test_heldout_probabilities_is_the_fast_one(learner, labels):
    rows, probs = learner.heldout_probabilities(labels)
    want_rows, want = heldout_probabilities(learner.graph, labels, learner.cfg.num_classes,
                                            learner.cfg.propagation, seed=learner.cfg.seed)
    assert np.array_equal(rows, want_rows) and np.array_equal(probs, want)
    assert probs.shape == (30, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_embeddings_is_a_read_only_view_of_the_pools(learner, data):
    assert learner.embeddings is learner.emb and learner.embeddings.shape[0] == N
    with pytest.raises(AttributeError):
        learner.embeddings = None
    assert ActiveLearner(tiny_cfg(), data[0][:N], device="cpu").embeddings is None
