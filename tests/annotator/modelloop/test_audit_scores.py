"""The model line (cv accuracy), the calibration's temperature and the pixel baseline's
choice are judged on the audit answers once there are enough of them (uniform random picks),
and on every held-out label before that: checked against the held-out scores of the audit
rows alone, computed by hand."""
import numpy as np

from annotator.modelloop import results
from annotator.modelloop.bridge import ProjectModel
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.fast import fit_temperature, heldout_scores
from mlcore.presets import recommended_config
from tests.annotator.modelloop.test_bulk_scores import _clusters


def _run(project, labels, audits):
    cfg = recommended_config(3, 224, 3)
    ids = np.arange(1, 121, dtype=np.int64)
    model = ProjectModel(project.pk, EmbeddingLearner(cfg, _clusters(), "cpu"), ids, ids, None, 32, 3,
                         [1, 2, 3], ["zero", "one", "two"])
    out = results.fast_path(project, model, labels, None, "margin", 5, rerank=False, audits=audits)
    return model, out[3], out[4]


def _labels():
    """Every class: 8 audit answers and 12 more labels of the strategy's picks, a third of
    those wrong (a hard pick is often answered wrong): only the picks pull the folds down."""
    truth = np.repeat(np.arange(3), 40)
    labels = np.full(120, -1)
    audits = np.concatenate([np.arange(c * 40, c * 40 + 8) for c in range(3)])
    picks = np.concatenate([np.arange(c * 40 + 8, c * 40 + 20) for c in range(3)])
    labels[audits] = truth[audits]
    labels[picks] = truth[picks]
    labels[picks[::3]] = (truth[picks[::3]] + 1) % 3
    return labels, audits


def test_enough_audits_judge_the_model_line_and_the_calibration(project):
    labels, audits = _labels()
    model, metrics, (rows, _calibrated) = _run(project, labels, audits)
    assert model.learner.cfg.head.min_heldout <= len(audits)
    rows_ref, raw = model.learner.heldout_probabilities(labels)
    assert np.array_equal(rows, rows_ref)
    audited = np.isin(rows, audits)
    assert (metrics["cv_on"], metrics["cv_count"]) == ("audits", len(audits))
    assert metrics["cv_accuracy"] == round(heldout_scores(labels[rows][audited], raw[audited])[0], 4)
    assert metrics["temperature"] == round(fit_temperature(raw[audited], labels[rows][audited], high=1.0), 4)
    everything = heldout_scores(labels[rows], raw)[0]
    assert metrics["cv_accuracy"] > everything  # the wrong picks pulled the folds' figure down


def test_too_few_audits_leave_it_to_the_folds(project):
    labels, audits = _labels()
    model, metrics, (rows, _calibrated) = _run(project, labels, audits[:5])
    _rows, raw = model.learner.heldout_probabilities(labels)
    assert (metrics["cv_on"], metrics["cv_count"]) == ("folds", len(rows))
    assert metrics["cv_accuracy"] == round(heldout_scores(labels[rows], raw)[0], 4)
    _m, no_audits, _h = _run(project, labels, None)
    assert no_audits["cv_on"] == "folds" and no_audits["cv_accuracy"] == metrics["cv_accuracy"]


def test_judged_rows():
    rows = np.array([3, 5, 7, 9])
    scored = np.array([True, True, False, True])
    got, on = results.judged_rows(rows, scored, np.array([5, 7, 9]), least=2)
    assert on == "audits" and got.tolist() == [False, True, False, True]
    got, on = results.judged_rows(rows, scored, np.array([5, 7, 9]), least=3)
    assert on == "folds" and got.tolist() == scored.tolist()
    assert results.judged_rows(rows, scored, None, least=1)[1] == "folds"
