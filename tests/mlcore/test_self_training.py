"""Self-training, the slow path's default method (mlcore.finetune.self_train): the targets
are the human labels and the teacher's argmax elsewhere (checked against a naive loop),
it runs exactly the steps asked for (at most `max_epochs` passes over the pool), it learns (the embeddings of 400 MNIST digits, a
randomly initialised encoder, a teacher that is right on 90% of the rows: far more
same-digit neighbours after 120 steps than before; checked by mutation: with the
optimiser step removed the test fails), a frozen encoder stays as it is, and the
held-out rows reach it only as the teacher's guesses (tests/mlcore/test_honest_selection.py
checks the labels and teacher probabilities the slow path passes)."""

import numpy as np
import pytest
import torch

from mlcore.config import EncoderConfig, FinetuneConfig
from mlcore.finetune import CosineClassifier, finetune, self_targets, self_train
from mlcore.models.encoders import build_encoder
from mlcore.pretrain import embed

ENC = EncoderConfig(input_size=12, widths=(8, 16, 32))


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # tiny batches: a second thread only waits on a shared machine


def knn_accuracy(emb: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    """Leave-one-out majority vote of the k most cosine-similar other rows (naive)."""
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    votes = np.array([np.bincount(y[row], minlength=10).argmax() for row in nearest])
    return float((votes == y).mean())


def test_targets_are_the_human_labels_and_the_teachers_argmax_elsewhere():
    rng = np.random.default_rng(0)
    n, c = 12, 3
    teacher = rng.dirichlet(np.ones(c), n).astype(np.float32)
    labels = np.full(n, -1)
    labels[[0, 4]] = [2, 1]
    soft = np.zeros((n, c), np.float32)
    soft[7] = [1, 0, 3]  # overlapping answers on row 7: 1 vote class 0, 3 votes class 2
    targets, weights = self_targets(labels, teacher, c, soft, human_weight=4.0)
    for i in range(n):
        if labels[i] >= 0:
            want, w = np.eye(c)[labels[i]], 4.0
        elif soft[i].sum() > 0:
            want, w = soft[i] / soft[i].sum(), 4.0
        else:
            want, w = np.eye(c)[int(np.argmax(teacher[i]))], 1.0
        np.testing.assert_allclose(targets[i], want, atol=1e-6)
        assert weights[i] == w


def _digits(mnist_small, n=400, classes=4):
    x, y = mnist_small
    keep = np.flatnonzero(y < classes)[:n]
    return x[keep], y[keep]


def test_self_training_runs_exactly_the_steps_asked_for_and_at_most_max_epochs(mnist_small):
    x, y = _digits(mnist_small, 60)
    seen = []
    labels = np.full(len(y), -1)
    labels[:4] = y[:4]
    teacher = np.eye(4, dtype=np.float32)[y]
    # 60 images in batches of 16: a new epoch order every 3 steps, 7 steps end inside one
    self_train(x, labels, build_encoder(ENC), ENC, FinetuneConfig(steps=7, batch_pool=16), 4, teacher,
               device="cpu", progress=lambda frac, info: seen.append((info["step"], info["total"], frac)))
    assert seen[-1] == (7, 7, 1.0)
    seen.clear()  # at most max_epochs passes over the pool: 2 x 60 / 16 -> 8 steps of the 100 asked
    self_train(x, labels, build_encoder(ENC), ENC, FinetuneConfig(steps=100, batch_pool=16, max_epochs=2), 4,
               teacher, device="cpu", progress=lambda frac, info: seen.append((info["step"], info["total"], frac)))
    assert seen[-1] == (8, 8, 1.0)


def test_self_training_learns_the_teachers_classes(mnist_small):
    x, y = _digits(mnist_small)
    rng = np.random.default_rng(0)
    teacher_says = y.copy()
    wrong = rng.choice(len(y), len(y) // 10, replace=False)
    teacher_says[wrong] = (y[wrong] + 1) % 4  # a teacher that is wrong on 10% of the rows
    teacher = np.eye(4, dtype=np.float32)[teacher_says]
    labels = np.full(len(y), -1)
    labels[:8] = y[:8]
    torch.manual_seed(0)
    encoder = build_encoder(ENC)
    before = knn_accuracy(embed(encoder, x, ENC, device="cpu"), y)
    cfg = FinetuneConfig(steps=120, batch_pool=64, lr=3e-3, seed=0)
    trained = self_train(x, labels, encoder, ENC, cfg, 4, teacher, device="cpu")
    after = knn_accuracy(embed(trained, x, ENC, device="cpu"), y)
    assert after > before + 0.1 and after > 0.85, (before, after)
    assert not trained.training


def test_a_frozen_encoder_stays_as_it_is_and_the_head_and_projection_come_back(mnist_small):
    x, y = _digits(mnist_small, 64)
    encoder = build_encoder(ENC)
    start = {k: v.clone() for k, v in encoder.state_dict().items()}
    labels = np.full(len(y), -1)
    labels[:4] = y[:4]
    head, proj = object(), object()
    cfg = FinetuneConfig(steps=5, batch_pool=16, mode="frozen")
    enc, h, p = finetune(x, labels, encoder, ENC, cfg, 4, head, None, np.eye(4, dtype=np.float32)[y],
                         device="cpu", proj=proj)
    assert h is head and p is proj
    assert all(torch.equal(v, start[k]) for k, v in enc.state_dict().items())


def test_bad_calls_say_what_is_wrong(mnist_small):
    x, y = _digits(mnist_small, 32)
    none = np.full(len(y), -1)
    teacher = np.eye(4, dtype=np.float32)[y]
    with pytest.raises(ValueError, match="at least one label"):
        self_train(x, none, build_encoder(ENC), ENC, FinetuneConfig(steps=1), 4, teacher, device="cpu")
    labels = none.copy()
    labels[0] = y[0]
    with pytest.raises(ValueError, match="lp_probs"):
        finetune(x, labels, build_encoder(ENC), ENC, FinetuneConfig(steps=1), 4, device="cpu")
    with pytest.raises(ValueError, match="unknown fine-tuning method"):
        finetune(x, labels, build_encoder(ENC), ENC, FinetuneConfig(steps=1, method="mixmatch"), 4,
                 lp_probs=teacher, device="cpu")


def test_the_cosine_classifier_scores_directions_not_lengths():
    clf = CosineClassifier(8, 3)
    h = torch.randn(5, 8)
    torch.testing.assert_close(clf(h), clf(7.5 * h))
