"""Bulk labels train the model but stay out of the scores the loop judges itself by (cv
accuracy, the calibration's temperature): checked against the held-out scores of the other
labels alone, computed by hand."""
import numpy as np

from annotator.labeling.answers import submit_annotation
from annotator.labeling.bulk import bulk_answer
from annotator.modelloop import arrays, results
from annotator.modelloop.bridge import ProjectModel
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.fast import fit_temperature, heldout_scores
from mlcore.presets import recommended_config


def _clusters(n_per=40, classes=3, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 4
    return np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres]).astype(np.float32)


def test_bulk_only_rows_are_the_items_labeled_only_in_bulk(project, alice, bob, make_items):
    project.annotations_per_item = 2
    project.save()
    items = make_items(5)
    bulk_answer(project, bob, items=[items[0].pk, items[1].pk, items[4].pk], label="one", idempotency_key="b")
    submit_annotation(project, alice, item_id=items[1].pk, label="one", idempotency_key="a1")
    submit_annotation(project, alice, item_id=items[2].pk, label="two", idempotency_key="a2")
    pool_index = np.array([i.pool_index for i in items[:4]])  # items[4] is newer than this pool
    assert arrays.bulk_only_rows(project, pool_index).tolist() == [True, False, False, False]
    assert arrays.bulk_only_rows(type(project).objects.create(name="Empty"), pool_index) is None


def test_cv_accuracy_and_temperature_leave_bulk_rows_out(project):
    emb = _clusters()
    truth = np.repeat(np.arange(3), 40)
    labels = np.full(120, -1)
    human = np.concatenate([np.arange(c * 40, c * 40 + 8) for c in range(3)])
    labels[human] = truth[human]
    bulk = np.concatenate([np.arange(c * 40 + 8, c * 40 + 14) for c in range(3)])
    labels[bulk] = (truth[bulk] + 1) % 3  # wrong on purpose: they would pull the scores down
    unscored = np.zeros(120, bool)
    unscored[bulk] = True
    cfg = recommended_config(3, 224, 3)
    ids = np.arange(1, 121, dtype=np.int64)

    def run(mask):
        model = ProjectModel(project.pk, EmbeddingLearner(cfg, emb, "cpu"), ids, ids, None, 32, 3,
                             [1, 2, 3], ["zero", "one", "two"])
        return results.fast_path(project, model, labels, None, "margin", 5, rerank=False, unscored=mask)

    _p, _q, _d, metrics, (rows, _calibrated) = run(unscored)
    _p, _q, _d, everything, _h = run(None)
    rows_ref, raw = EmbeddingLearner(cfg, emb, "cpu").heldout_probabilities(labels)
    assert np.array_equal(rows, rows_ref)
    keep = ~unscored[rows]
    assert metrics["cv_accuracy"] == round(heldout_scores(labels[rows][keep], raw[keep])[0], 4)
    assert metrics["temperature"] == round(fit_temperature(raw[keep], labels[rows][keep], high=1.0), 4)
    assert everything["cv_accuracy"] < metrics["cv_accuracy"]
