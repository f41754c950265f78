"""The dashboard's model section against naive references: the binned audit curve with its
Wilson intervals, the cross-validation points, the confused class pairs and the suspect
labels (read from a version's held-out arrays), and the page and API that show them."""
import random
from collections import Counter

import numpy as np
import pytest
from django.urls import reverse

from annotator.dashboard import model_side
from annotator.labeling.corrections import review_item
from annotator.modelloop import predictions
from annotator.modelloop.predictions import artifact_path
from annotator.modelloop.status import wilson_interval
from annotator.modelloop.steering import reset_model
from annotator.models import Annotation, ModelVersion, TrainerState
from tests.annotator.dashboard.test_progress import _answer, _items


def _version(project, number, labels_used, *, kind="fast", metrics=None, folder="", classes=None, generation=0):
    return ModelVersion.objects.create(
        project=project, number=number, kind=kind, labels_used=labels_used, metrics=metrics or {},
        artifact_dir=folder, classes=classes or project.class_names(), generation=generation,
    )


def _audit(project, user, item, version, guess, label):
    """An audit answer whose served guess was `guess` from `version`."""
    annotation = _answer(project, user, item, label)
    Annotation.objects.filter(pk=annotation.pk).update(
        is_audit=True, model_version=version, suggestion={"label": guess, "confidence": 0.9, "top": []})
    return annotation


def _naive_bins(rows):
    """Reference: answers in label order, cut greedily at total/bins, the rest in the last bin."""
    total = sum(n for _l, n, _c in rows)
    bins = min(model_side.CURVE_MAX_BINS, max(1, total // model_side.CURVE_MIN_PER_BIN))
    out, current = [], []
    for labels, n, correct in rows:
        current.append((labels, n, correct))
        if sum(x[1] for x in current) >= total / bins and len(out) < bins - 1:
            out.append(current)
            current = []
    if current:
        out.append(current)
    result = []
    for group in out:
        n = sum(x[1] for x in group)
        correct = sum(x[2] for x in group)
        low, high = wilson_interval(correct, n)
        result.append((round(sum(x[0] * x[1] for x in group) / n, 1), n, correct, low, high))
    return result


@pytest.mark.parametrize("seed", range(6))
def test_audit_bins_match_the_reference(seed):
    rng = random.Random(seed)
    rows, labels = [], 0
    for _ in range(rng.randint(1, 30)):
        labels += rng.randint(1, 20)
        n = rng.randint(1, 9)
        rows.append((labels, n, rng.randint(0, n)))
    got = [(p["labels"], p["n"], p["correct"], p["low"], p["high"]) for p in model_side._audit_bins(rows)]
    assert got == _naive_bins(rows)
    assert sum(p[1] for p in got) == sum(r[1] for r in rows)


def test_the_audit_curve_counts_guesses_per_model(project, alice, bob):
    items = _items(project, 30)
    v1 = _version(project, 1, 5)
    v2 = _version(project, 2, 20)
    old = _version(project, 3, 50, generation=0)
    for i, item in enumerate(items[:12]):
        _audit(project, bob, item, v1, "one", "one" if i < 6 else "two")  # 6/12
    for i, item in enumerate(items[12:24]):
        _audit(project, bob, item, v2, "two", "two" if i < 11 else "one")  # 11/12
    _answer(project, bob, items[24], "one")  # not an audit answer: ignored
    points = model_side.audit_curve(project)
    assert [(p["labels"], p["n"], p["correct"]) for p in points] == [(5.0, 12, 6), (20.0, 12, 11)]
    assert points[0]["low"] < 0.5 < points[0]["high"]
    # After a reset, the old generation's answers leave the curve.
    reset_model(project, by=alice)
    _audit(project, bob, items[25], old, "one", "one")
    assert model_side.audit_curve(project) == []


def test_the_cv_curve_takes_the_newest_version_per_label_count(project):
    _version(project, 1, 0, kind="pretrain")
    _version(project, 2, 10, metrics={"cv_accuracy": 0.5})
    _version(project, 3, 10, metrics={"cv_accuracy": 0.6})
    _version(project, 4, 15, metrics={})
    _version(project, 5, 20, metrics={"cv_accuracy": 0.8})
    _version(project, 6, 25, kind="slow", metrics={"accepted": True, "adopted": True})
    assert model_side.cv_curve(project) == [
        {"labels": 10, "version": 3, "accuracy": 0.6}, {"labels": 20, "version": 5, "accuracy": 0.8}]
    assert model_side.slow_runs(project) == [{"labels": 25, "version": 6, "adopted": True}]


def _heldout(project, items, labels, probs, number=9, metrics=None):
    """A current fast version whose folder holds held-out arrays for `items`."""
    folder = f"projects/{project.pk}/fast-test-{number}"
    path = artifact_path(folder)
    path.mkdir(parents=True)
    np.save(path / "heldout_items.npy", np.array([item.pk for item in items], np.int64))
    np.save(path / "heldout_labels.npy", np.array(labels, np.int64))
    np.save(path / "heldout_probs.npy", np.array(probs, np.float32))
    version = _version(project, number, len(items), folder=folder, metrics=metrics or {})
    TrainerState.objects.update_or_create(project=project, defaults={"current_version": version})
    return version


def test_confused_pairs_match_a_naive_count(project):
    rng = np.random.default_rng(3)
    items = _items(project, 80)
    labels = rng.integers(0, 3, 80)
    probs = rng.dirichlet(np.ones(3), size=80)
    version = _heldout(project, items, labels, probs)

    pairs = model_side.confused_pairs(predictions.heldout(version), limit=10)
    guess = probs.argmax(1)
    names = project.class_names()
    naive = Counter()
    for human, g in zip(labels, guess):
        if human != g:
            naive[tuple(sorted((int(human), int(g))))] += 1
    assert {(p["a"], p["b"]): p["count"] for p in pairs} == {(names[a], names[b]): n for (a, b), n in naive.items()}
    counts = [p["count"] for p in pairs]
    assert counts == sorted(counts, reverse=True)
    top = pairs[0]
    a, b = names.index(top["a"]), names.index(top["b"])
    assert top["share"] == pytest.approx(top["count"] / int(((labels == a) | (labels == b)).sum()))


def test_suspects_are_confident_disagreements_not_yet_reviewed(project, alice, bob):
    items = _items(project, 6)
    for item, label in zip(items, ["zero", "one", "two", "zero", "one", "two"]):
        _answer(project, bob, item, label)
    probs = [
        [0.05, 0.9, 0.05],  # labeled zero, model says one (0.90): suspect
        [0.1, 0.85, 0.05],  # agrees
        [0.6, 0.3, 0.1],  # labeled two, says zero, but only 0.6: not confident enough
        [0.01, 0.01, 0.98],  # labeled zero, says two (0.98): suspect, first
        [0.95, 0.03, 0.02],  # labeled one, says zero (0.95): suspect, then reviewed below
        [0.0, 0.0, 1.0],
    ]
    _heldout(project, items, [0, 1, 2, 0, 1, 2], probs)
    model = model_side.model_summary(project, min_confidence=0.8)
    assert [row["item"] for row in model["suspects"]] == [items[3].pk, items[4].pk, items[0].pk]
    assert model["suspects_flagged"] == 3
    first = model["suspects"][0]
    assert (first["human"], first["guess"], first["confidence"]) == ("zero", "two", pytest.approx(0.98))
    assert first["labels"][0]["annotator"] == "bob"
    review_item(project, items[4].pk, by=alice)  # kept
    review_item(project, items[0].pk, by=alice, label="one")  # corrected
    Annotation.objects.filter(item=items[3]).update(label=project.classes.get(name="two"))  # agrees now
    assert model_side.model_summary(project, min_confidence=0.8)["suspects"] == []


def test_the_dashboard_shows_the_model_section(client, project, alice, bob, dave):
    items = _items(project, 4)
    for item, label in zip(items, ["zero", "one", "two", "zero"]):
        _answer(project, bob, item, label)
    _heldout(project, items, [0, 1, 2, 0], [[0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]],
             metrics={"uncertainty_hist": [1] * 20, "unlabeled": 20, "uncertainty_mean": 0.5,
                      "predicted_unlabeled": [10, 5, 5], "cv_accuracy": 0.75})
    client.force_login(alice)
    page = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    for needle in ("chart-curve", "chart-uncertainty", "chart-classes", 'id="dashboard-data"', "Suspect labels",
                   f"suspect-{items[0].pk}", "Relabel as one", "zero ↔ one", "20 unlabeled images"):
        assert needle in page, needle
    client.force_login(dave)  # viewers see it, without the review buttons
    page = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    assert f"suspect-{items[0].pk}" in page and "Relabel as" not in page


def test_the_dashboard_api_sends_the_same_numbers(project, api, alice, bob, dave):
    items = _items(project, 3)
    for item, label in zip(items, ["zero", "one", "one"]):
        _answer(project, bob, item, label)
    _heldout(project, items, [0, 1, 1], [[0.1, 0.9, 0], [0, 1, 0], [0.9, 0.1, 0]],
             metrics={"uncertainty_hist": [0] * 19 + [7], "unlabeled": 7, "predicted_unlabeled": [3, 2, 2]})
    url = f"/api/projects/{project.pk}/dashboard/"
    body = api(dave).get(url).json()
    assert body["progress"]["labeled"] == 3
    assert body["per_class"] == [{"name": "zero", "labels": 1}, {"name": "one", "labels": 2}, {"name": "two", "labels": 0}]
    model = body["model"]
    assert model["classes"] == {"names": ["zero", "one", "two"], "labeled": [1, 2, 0], "predicted": [3, 2, 2]}
    assert model["uncertainty"]["counts"][-1] == 7 and len(model["uncertainty"]["edges"]) == 21
    assert {row["item"] for row in model["suspects"]} == {items[0].pk, items[2].pk}
    assert "7 unlabeled images" in body["fields"]["uncertainty_text"]
    assert api(bob).get(url).status_code == 403


def test_a_version_without_heldout_files_shows_no_suspects(project, bob):
    items = _items(project, 2)
    _answer(project, bob, items[0], "one")
    version = _version(project, 1, 1, folder=f"projects/{project.pk}/gone")
    TrainerState.objects.create(project=project, current_version=version)
    model = model_side.model_summary(project)
    assert model["suspects"] == [] and model["confused"] == [] and model["heldout_labels"] == 0
    assert model["uncertainty"] is None and model["classes"]["predicted"] is None
