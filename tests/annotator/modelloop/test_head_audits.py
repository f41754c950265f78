"""The embedding head's weight is judged on the audit answers (drawn uniformly at random)
once there are enough of them, and on folds of all labels before that."""
import numpy as np

from annotator.modelloop import results
from tests.annotator.modelloop.test_baseline import CLASSES, N, _labels, _model, _pool


def _spy(monkeypatch, model):
    seen = []
    real = type(model.learner).fast_update

    def fast_update(self, labels, soft=None, heldout=None):
        seen.append(None if heldout is None else np.asarray(heldout).copy())
        return real(self, labels, soft, heldout=heldout)

    monkeypatch.setattr(type(model.learner), "fast_update", fast_update)
    return seen


def _good(truth):
    centres = np.eye(16, dtype=np.float32)[:CLASSES] * 5
    return centres[truth] + np.random.default_rng(2).normal(size=(N, 16)).astype(np.float32) * 0.3


def test_enough_audits_judge_the_head(project, monkeypatch):
    images, truth = _pool()
    model = _model(project, _good(truth), images)
    labels = _labels(truth, per_class=10)
    audits = np.flatnonzero(labels >= 0)[:model.learner.cfg.head.min_heldout]
    seen = _spy(monkeypatch, model)
    _p, _q, _d, metrics, _h = results.fast_path(project, model, labels, None, "margin", 5, audits=audits)
    assert seen and all(s is not None and np.array_equal(s, audits) for s in seen)
    assert metrics["head"]["heldout"] == len(audits) and metrics["head"]["source"] != "folds"


def test_too_few_audits_leave_the_folds(project, monkeypatch):
    images, truth = _pool()
    model = _model(project, _good(truth), images)
    labels = _labels(truth, per_class=10)
    audits = np.flatnonzero(labels >= 0)[:model.learner.cfg.head.min_heldout - 1]
    seen = _spy(monkeypatch, model)
    results.fast_path(project, model, labels, None, "margin", 5, audits=audits)
    assert seen and all(s is None for s in seen)
