"""End-to-end: the learner as the app drives it, and the benchmark CLI."""

import json

import numpy as np
import pytest

from mlcore.config import EncoderConfig, FinetuneConfig, LearnerConfig, PretrainConfig, PropagationConfig
from mlcore.learner import ActiveLearner


def small_cfg(seed=0):
    return LearnerConfig(
        encoder=EncoderConfig(input_size=16, widths=(8, 16, 32)),
        pretrain=PretrainConfig(epochs=2, batch_size=64, seed=seed),
        propagation=PropagationConfig(k=10),
        finetune=FinetuneConfig(steps=5, batch_size=16, unlabeled_ratio=2, seed=seed),
        seed=seed)


def run_session(x, y, seed=0):
    learner = ActiveLearner(small_cfg(seed), x[:300], device="cpu")
    seen = []
    emb = learner.pretrain(progress=lambda f, info: seen.append(f))
    assert emb.shape == (300, 32) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    assert seen and 0 < seen[-1] <= 1
    labels = -np.ones(300, np.int64)
    first = learner.rank(10, labels)  # cold start
    labels[first] = y[:300][first]
    probs = learner.fast_update(labels)
    assert probs.shape == (300, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    for strategy in ("margin", "bald", "random"):
        nxt = learner.rank(5, labels, strategy)
        assert len(set(nxt.tolist())) == 5 and (labels[nxt] == -1).all()
        labels[nxt] = y[:300][nxt]
        learner.fast_update(labels)
    learner.finetune(labels)
    test = learner.predict(x[300:400])
    return learner, labels, test


def test_learner_session_seeded(mnist_small, tmp_path):
    x, y = mnist_small
    learner, labels, test = run_session(x, y)
    assert test.shape == (100, 10)
    # better than chance (0.1) after 25 labels on 2 epochs of pretraining (100 test items: one
    # sd is 0.03); whether pretraining learns is tests/mlcore/test_bench_pretrain.py's question
    assert (test.argmax(1) == y[300:400]).mean() > 0.15
    # deterministic on CPU with the same seed
    _, labels2, test2 = run_session(x, y)
    assert np.array_equal(labels, labels2) and np.allclose(test, test2, atol=1e-5)
    # save / load restores the same guesses
    p = str(tmp_path / "learner.ckpt")
    learner.save(p, labels)
    again = ActiveLearner.load(p, x[:300], device="cpu")
    assert np.array_equal(again.labels, labels)
    assert np.allclose(again.predict(x[300:400]), test, atol=1e-5)


def test_transfer_from_checkpoint(mnist_small, tmp_path):
    import torch
    x, y = mnist_small
    src = ActiveLearner(small_cfg(), x[:200], device="cpu")
    src.pretrain()
    p = str(tmp_path / "enc.pt")
    torch.save({"state_dict": {"encoder." + k: v for k, v in src.encoder.state_dict().items()}}, p)
    cfg = small_cfg()
    cfg.encoder.adapters = True
    cfg.finetune.mode = "adapters"
    dst = ActiveLearner(cfg, x[:200], device="cpu")
    missing = dst.init_from_checkpoint(p)
    assert missing and all(".down." in k or ".up." in k for k in missing)
    # adapters start as the identity: same embeddings as the source encoder
    assert np.allclose(dst.emb, src.emb, atol=1e-5)
    labels = -np.ones(200, np.int64)
    labels[:20] = y[:20]
    frozen = {k: v.clone() for k, v in dst.encoder.state_dict().items() if "features.0.0" in k}
    dst.finetune(labels)
    after = dst.encoder.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items() if "weight" in k)


@pytest.mark.slow
def test_bench_cli_npz(mnist_small, tmp_path):
    from mlcore.bench import main
    x, y = mnist_small
    p = tmp_path / "d.npz"
    np.savez(p, x_train=x[:600], y_train=y[:600], x_test=x[600:800], y_test=y[600:800])
    out = tmp_path / "out"
    res = main(["--data", f"npz:{p}", "--pool-size", "400", "--budget", "30", "--batch", "10",
                "--pretrain-steps", "20", "--slow-steps", "10", "--compare", "random,bald",
                "--out", str(out)])
    saved = json.loads((out / "result.json").read_text())
    assert (out / "curve.png").stat().st_size > 1000
    for key in ("dataset", "profile", "strategy", "seed", "device", "pool_size", "test_size",
                "pretrain_s", "wall_s", "curve", "labels_to"):
        assert key in saved, key
    assert [c["labels"] for c in saved["curve"]] == [10, 20, 30]
    assert set(saved["labels_to"]) == {"0.90", "0.95", "0.98", "0.99"}
    assert set(saved["compare"]) == {"random", "bald"}
    assert saved["test_size"] == 200 and res["pool_size"] == 400
