"""The loop of a multi-label project on tiny generated images: one-vs-rest probabilities,
set suggestions on the leases, held-out set scores, a correction seen by the next fast path,
and the audit accuracy as an exact-set match with Hamming loss and per-class F1."""
import numpy as np
import pytest

from annotator.labeling.answers import submit_annotation
from annotator.labeling.corrections import correct_annotation
from annotator.labeling.leasing import lease_next
from annotator.modelloop import arrays, predictions
from annotator.modelloop.status import trainer_status
from annotator.modelloop.trainer import Trainer
from annotator.models import Annotation, Lease, ModelVersion
from annotator.projects.changes import create_project
from annotator.projects.members import add_member
from tests.annotator.modelloop.trainer_helpers import add_shape_items, fast_trainer_settings

CLASSES = ["wide", "tall", "round"]
SETS = {"bar": ["wide"], "column": ["tall"], "square": ["wide", "tall"]}  # "round": never


@pytest.fixture
def shape_sets(alice, bob, settings):
    fast_trainer_settings(settings)
    project = create_project(alice, name="Shape sets", classes=CLASSES, audit_fraction=0.0, multi_label=True,
                             query_batch_size=6)
    add_member(project, "bob", "annotator")
    items, truth = add_shape_items(project, 60)
    project.truth = {item.pk: SETS[kind] for item, kind in zip(items, truth)}
    return project


def _label(project, user, n, prefix):
    for i in range(n):
        lease = lease_next(project, user)
        submit_annotation(project, user, item_id=lease.item_id, labels=project.truth[lease.item_id],
                          idempotency_key=f"{prefix}{i}")


def _newest(project):
    return ModelVersion.objects.filter(project=project, kind="fast", status="ok").order_by("-number").first()


@pytest.mark.slow
def test_the_loop_suggests_sets_from_per_class_probabilities(shape_sets, bob):
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    trainer.run_once()  # the cold-start queue
    _label(shape_sets, bob, 24, "a")
    Lease.objects.all().delete()
    trainer.run_once()
    version = _newest(shape_sets)
    assert version.labels_used == 24 and version.metrics["multi_label"] is True
    probs = np.load(predictions.artifact_path(version.artifact_dir) / "probs.npy")
    assert probs.shape == (60, 3) and probs.min() >= 0 and probs.max() <= 1
    open_rows = np.ones(60, bool)
    answered, targets = arrays.set_arrays(shape_sets, np.arange(60), [c.pk for c in shape_sets.ordered_classes()])
    open_rows[answered >= 0] = False
    assert not np.allclose(probs[open_rows].sum(1), 1.0)  # per class, not a softmax
    assert version.metrics["predicted_counts"][2] == 0  # nobody ever said "round"
    for key in ("cv_accuracy", "cv_hamming_loss", "cv_macro_f1"):
        assert 0 <= version.metrics[key] <= 1
    lease = lease_next(shape_sets, bob)
    row = probs[lease.item.pool_index]
    assert lease.suggestion["labels"] == [c for c, p in zip(CLASSES, row) if p >= 0.5]
    assert lease.suggestion["label"] == CLASSES[int(row.argmax())]
    right = [lease_next(shape_sets, bob, exclude=[lease.item_id])]
    suggested = [lease.suggestion["labels"]] + [r.suggestion["labels"] for r in right]
    truths = [shape_sets.truth[lease.item_id]] + [shape_sets.truth[r.item_id] for r in right]
    assert any(s == t for s, t in zip(suggested, truths))  # the shapes are easy: sets come out right


def test_a_corrected_set_reaches_the_next_fast_path(shape_sets, bob, alice):
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    _label(shape_sets, bob, 3, "b")
    trainer.run_once()
    before = _newest(shape_sets).number
    assert trainer.run_once() is False  # nothing changed
    answer = Annotation.objects.filter(item__project=shape_sets).first()
    correct_annotation(shape_sets, answer.pk, None, labels=["round"], by=alice)
    assert trainer.run_once() is True
    assert _newest(shape_sets).number > before


def test_audit_accuracy_is_the_exact_set_match(shape_sets, bob):
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    trainer.run_once()
    _label(shape_sets, bob, 12, "c")
    trainer.run_once()
    shape_sets.audit_fraction = 1.0
    shape_sets.save()
    Lease.objects.all().delete()
    guesses, answers = [], []
    for i in range(8):
        lease = lease_next(shape_sets, bob)
        assert lease.is_audit and "labels" in lease.suggestion
        truth = shape_sets.truth[lease.item_id]
        submit_annotation(shape_sets, bob, item_id=lease.item_id, labels=truth, idempotency_key=f"d{i}")
        guesses.append(set(lease.suggestion["labels"]))
        answers.append(set(truth))
    accuracy = trainer_status(shape_sets)["accuracy"]
    assert accuracy["measure"] == "exact set" and accuracy["n"] == 8
    assert accuracy["correct"] == sum(g == a for g, a in zip(guesses, answers))
    wrong = sum(len(g ^ a) for g, a in zip(guesses, answers))
    assert accuracy["hamming_loss"] == pytest.approx(wrong / (8 * 3), abs=1e-4)
    assert set(accuracy["per_class_f1"]) == set(CLASSES)
