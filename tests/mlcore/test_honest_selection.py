"""Honest model selection (mlcore.selection and ActiveLearner.finetune): a fine-tune is
judged on labelled items it never saw, paired against the current graph, and adopted only
when it wins beyond the noise. The fine-tuning itself is replaced by a spy whose "encoder"
gives chosen embeddings, so the test controls whether the candidate is better or worse."""
import numpy as np
import pytest
import torch
from scipy.stats import binomtest

import mlcore.learner as learner_module
from mlcore.config import EncoderConfig, FinetuneConfig, LearnerConfig, PropagationConfig
from mlcore.fast import fast_update
from mlcore.learner import ActiveLearner
from mlcore.selection import compare, holdout_rows, sign_test_p

C, PER = 3, 40


def _clusters(noise, seed):
    rng = np.random.default_rng(seed)
    centres = np.eye(C, 16) * 3
    emb = np.concatenate([c + noise * rng.normal(size=(PER, 16)) for c in centres])
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


TRUTH = np.repeat(np.arange(C), PER)
EMB = {
    "current": _clusters(2.2, 0),   # noisy: propagation gets many held-out items wrong
    "better": _clusters(0.3, 1),    # clean clusters
    "worse": np.random.default_rng(2).normal(size=(C * PER, 16)).astype(np.float32),  # no structure
}


class Tagged(torch.nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind


@pytest.fixture
def spy(monkeypatch):
    calls = []

    def fake_embed(encoder, pool):
        e = EMB[encoder.kind]
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    def fake_finetune(images, labels, encoder, enc_cfg, cfg, num_classes, head, soft, lp_probs, lp_weights,
                      *rest):
        calls.append({"labels": labels.copy(), "soft": None if soft is None else soft.copy(),
                      "lp_probs": lp_probs.copy()})
        return Tagged(spy.candidate), None, None

    monkeypatch.setattr(learner_module, "embed", fake_embed)
    monkeypatch.setattr(learner_module, "finetune", fake_finetune)
    spy.calls = calls
    spy.candidate = "better"
    return spy


def _learner():
    cfg = LearnerConfig(num_classes=C, encoder=EncoderConfig(input_size=8, in_channels=1),
                        propagation=PropagationConfig(k=8, balance_labels=True),
                        finetune=FinetuneConfig(holdout_min=10), seed=0)
    learner = ActiveLearner(cfg, np.zeros((C * PER, 8, 8), np.uint8), device="cpu")
    learner.encoder = Tagged("current")
    learner._refresh()
    return learner


def _labels(n=60, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.full(len(TRUTH), -1)
    rows = rng.choice(len(TRUTH), n, replace=False)
    labels[rows] = TRUTH[rows]
    return labels, rows


def test_a_better_candidate_is_adopted_and_never_trained_on_the_held_out_items(spy):
    learner = _learner()
    labels, rows = _labels()
    audits = rows[:20]
    learner.finetune(labels, heldout=audits)
    assert learner.accepted and learner.encoder.kind == "better"
    verdict = learner.selection
    assert verdict["heldout"] == 20 and verdict["candidate_only"] > verdict["current_only"]
    assert verdict["p_value"] < 0.1
    seen = spy.calls[0]
    assert (seen["labels"][audits] == -1).all()                     # no held-out label
    assert (seen["labels"][rows[20:]] == TRUTH[rows[20:]]).all()    # every other label
    train = labels.copy()
    train[audits] = -1
    reference = fast_update(EMB["current"] / np.linalg.norm(EMB["current"], axis=1, keepdims=True),
                            _graph(EMB["current"], learner),
                            train, C, learner.cfg.propagation).probs
    np.testing.assert_allclose(seen["lp_probs"], reference, atol=1e-6)  # pseudo-labels without them


def _graph(emb, learner):
    from mlcore.propagation import knn_graph
    p = learner.cfg.propagation
    return knn_graph(emb / np.linalg.norm(emb, axis=1, keepdims=True), p.k, p.gamma, p.exact_max, "cpu")


def test_a_worse_candidate_is_rejected_and_nothing_changes(spy):
    spy.candidate = "worse"
    learner = _learner()
    labels, rows = _labels()
    emb, graph, encoder = learner.emb, learner.graph, learner.encoder
    learner.finetune(labels, heldout=rows[:20])
    assert not learner.accepted
    assert learner.emb is emb and learner.graph is graph and learner.encoder is encoder
    assert learner.selection["candidate_correct"] < learner.selection["current_correct"]


def test_a_tie_is_not_a_win(spy):
    spy.candidate = "current"  # the same embeddings: same predictions
    learner = _learner()
    labels, rows = _labels()
    learner.finetune(labels, heldout=rows[:20])
    assert not learner.accepted and learner.selection["candidate_only"] == learner.selection["current_only"] == 0


def test_without_audits_a_random_share_is_held_out_and_too_few_labels_train_nothing(spy):
    learner = _learner()
    labels, rows = _labels(n=50)
    learner.finetune(labels)  # no audit rows: 20% of 50 -> 10 held out
    held = np.flatnonzero((spy.calls[0]["labels"] < 0) & (labels >= 0))
    assert len(held) == 10 and learner.selection["heldout"] == 10
    few, _ = _labels(n=19)
    learner.finetune(few)
    assert len(spy.calls) == 1 and not learner.accepted and "skipped" in learner.selection


def test_holdout_rows_prefers_the_given_audits_and_never_takes_every_label():
    labels, rows = _labels(n=30)
    assert holdout_rows(labels, 0.2, 10, 0, given=rows[:12]).tolist() == sorted(rows[:12].tolist())
    assert len(holdout_rows(labels, 0.2, 10, 0, given=rows[:5])) == 10  # too few audits: random share
    assert len(holdout_rows(labels, 0.2, 10, 0, given=rows)) == 10  # all labels are audits: not all held out
    assert len(holdout_rows(labels, 0.2, 16, 0)) == 0  # 30 labels cannot spare 16 and train on 16
    unlabelled = np.flatnonzero(labels < 0)[:12]
    assert len(np.intersect1d(holdout_rows(labels, 0.2, 10, 0, given=unlabelled), unlabelled)) == 0


@pytest.mark.parametrize(("b", "c"), [(0, 0), (3, 0), (4, 0), (5, 2), (2, 5), (9, 3)])
def test_sign_test_matches_scipy(b, c):
    want = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5, alternative="greater").pvalue
    assert sign_test_p(b, c) == pytest.approx(want)


def _probabilities(n=20):
    right = np.ones(n, bool)
    return right, np.full(n, 0.6)


def test_a_candidate_right_where_both_are_right_wins_on_the_probability_of_the_truth():
    right, p_cur = _probabilities()
    p_cand = p_cur.copy()
    p_cand[:17] = 0.8  # more probability on the true class for 17 of 20, the same for 3
    v = compare(right, right, 0.1, p_cur, p_cand)
    assert v.candidate_only == v.current_only == 0 and v.p_value == 1.0  # correctness sees nothing
    assert (v.truth_gain, v.truth_loss) == (17, 0) and v.p_truth == pytest.approx(0.5 ** 17)
    assert v.log_loss_candidate < v.log_loss_current
    assert v.adopt and v.by == "probability"
    assert not compare(right, right, 0.1, p_cur, p_cur).adopt  # the same numbers: a tie


def test_the_probability_rule_never_adopts_a_candidate_that_loses_items_or_log_loss():
    right, p_cur = _probabilities()
    p_cand = np.full(20, 0.8)
    wrong = right.copy()
    wrong[0] = False  # one item only the current model gets right, none the other way
    assert not compare(right, wrong, 0.1, p_cur, p_cand).adopt
    # 15 items a little surer, 5 much less sure (still right): the mean log loss rises
    p_cand = np.where(np.arange(20) < 15, 0.65, 0.05)
    v = compare(right, right, 0.1, p_cur, p_cand)
    assert v.p_truth < 0.1 and v.log_loss_candidate > v.log_loss_current and not v.adopt
    # 11 of 20 surer is not beyond the noise
    p_cand = np.where(np.arange(20) < 11, 0.9, 0.55)
    v = compare(right, right, 0.1, p_cur, p_cand)
    assert v.p_truth == pytest.approx(binomtest(11, 20, 0.5, alternative="greater").pvalue) and not v.adopt


def test_a_win_on_correctness_is_reported_as_such():
    cur = np.zeros(12, bool)
    cand = np.ones(12, bool)
    v = compare(cur, cand, 0.1, np.full(12, 0.2), np.full(12, 0.9))
    assert v.adopt and v.by == "correctness"
    assert compare(cur, cand, 0.1).by == "correctness" and compare(cand, cur, 0.1).by == ""
