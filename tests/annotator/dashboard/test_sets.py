"""The dashboard of a multi-label project, against a naive Python reference: every class of a
set counts in the per-class numbers; agreement is the mean Jaccard overlap of two annotators'
sets on the same item; the audit curve is the exact-set match; suspects are answers whose
classes the held-out model contradicts; relabeling a suspect in one go is refused for sets."""
import itertools
import random
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from annotator.access import Invalid
from annotator.dashboard import model_side, progress
from annotator.labeling.answers import submit_annotation, undo_last
from annotator.labeling.corrections import review_item
from annotator.models import Annotation, Item, Lease, ModelVersion, TrainerState
from annotator.projects.selectors import project_stats

CLASSES = ["cat", "dog", "car"]


@pytest.fixture
def voted(tags, make_items, alice, bob):
    """Random sets from alice and bob (two answers per item) on 8 items, one undone."""
    tags.annotations_per_item = 2
    tags.save()
    rng = random.Random(4)
    items = make_items(8, target=tags)
    answers = {}
    for n, (item, user) in enumerate(itertools.product(items, [alice, bob])):
        chosen = [c for c in CLASSES if rng.random() < 0.5]
        submit_annotation(tags, user, item_id=item.pk, labels=chosen, idempotency_key=f"k{n}")
        answers[(item.pk, user.pk)] = set(chosen)
    undo_last(tags, bob)  # bob's answer on the last item goes
    del answers[(items[-1].pk, bob.pk)]
    return items, answers


def test_per_class_counts_each_class_of_a_set(tags, voted):
    _items, answers = voted
    expected = {c: sum(c in s for s in answers.values()) for c in CLASSES}
    assert dict(progress.per_class(tags)) == expected
    assert project_stats(tags)["per_class"] == expected


def test_agreement_is_the_mean_jaccard_overlap(tags, voted, alice, bob):
    _items, answers = voted
    overlaps = []
    for (item, user), chosen in answers.items():
        other = answers.get((item, bob.pk if user == alice.pk else alice.pk))
        if other is not None and user == alice.pk:
            union = chosen | other
            overlaps.append(len(chosen & other) / len(union) if union else 1.0)
    rows, overall = progress.annotators(tags)
    assert overall["pairs"] == len(overlaps)
    assert overall["agreement"] == pytest.approx(sum(overlaps) / len(overlaps))
    assert {r["username"]: r["pairs"] for r in rows} == {"alice": len(overlaps), "bob": len(overlaps)}


def _set_model(project, items, truth, probs):
    folder = f"{project.pk}/v1"
    base = Path(settings.ARTIFACTS_ROOT) / folder
    base.mkdir(parents=True)
    np.save(base / "pool_index.npy", np.array([i.pool_index for i in items]))
    np.save(base / "probs.npy", np.asarray(probs, np.float32))
    np.save(base / "heldout_items.npy", np.array([i.pk for i in items]))
    np.save(base / "heldout_labels.npy", np.asarray(truth, np.int64))
    np.save(base / "heldout_probs.npy", np.asarray(probs, np.float32))
    version = ModelVersion.objects.create(project=project, number=1, kind="fast", classes=CLASSES, artifact_dir=folder,
                                          labels_used=4, pool_size=len(items), metrics={"multi_label": True})
    TrainerState.objects.create(project=project, current_version=version)
    return version


def test_audit_curve_suspects_and_review(tags, make_items, bob, alice):
    from annotator.modelloop import predictions

    predictions._cache.clear()
    items = make_items(4, target=tags)
    sets = [["cat"], ["dog", "car"], [], ["cat", "dog"]]
    probs = [[0.9, 0.1, 0.2], [0.1, 0.97, 0.1], [0.1, 0.2, 0.1], [0.8, 0.9, 0.1]]
    version = _set_model(tags, items, [[c in s for c in CLASSES] for s in sets], probs)
    for n, (item, chosen) in enumerate(zip(items, sets)):
        lease = Lease.objects.create(project=tags, item=item, user=bob, expires_at=timezone.now() + timedelta(hours=1),
                                     is_audit=True, model_version=version,
                                     suggestion=predictions.current(tags).suggestion(item))
        assert lease.suggestion["labels"] == [c for c, p in zip(CLASSES, probs[n]) if p >= 0.5]
        submit_annotation(tags, bob, item_id=item.pk, labels=chosen, idempotency_key=f"a{n}")
    assert Annotation.objects.filter(is_audit=True).count() == 4
    # guesses: {cat} right, {dog} wrong (car missed), {} right, {cat, dog} right
    [point] = model_side.audit_curve(tags)
    assert (point["n"], point["correct"], point["labels"]) == (4, 3, 4)
    summary = model_side.model_summary(tags, min_confidence=0.85)
    assert summary["confused"] == []
    audit = summary["set_audit"]
    assert (audit["n"], audit["correct"], audit["measure"]) == (4, 3, "exact set")
    assert audit["hamming_loss"] == pytest.approx(1 / 12, abs=1e-4)  # car missed on item 1
    assert audit["per_class_f1"] == {"cat": 1.0, "dog": 1.0, "car": 0.0}
    # item 1: car chosen at 0.1 (contradiction 0.9); item 3 never reaches 0.85
    assert [(r["item"], r["human"], r["guess"], r["confidence"]) for r in summary["suspects"]] == [
        (items[1].pk, "{dog, car}", "{dog}", 0.9)]
    assert summary["suspects"][0]["labels"][0]["label"] == "{dog, car}"
    with pytest.raises(Invalid, match="multi-label"):
        review_item(tags, items[1].pk, by=alice, label="dog")
    review_item(tags, items[1].pk, by=alice)
    assert model_side.model_summary(tags, min_confidence=0.85)["suspects"] == []


def test_the_dashboard_page_says_how_agreement_is_measured(client, tags, voted, dave, charlie):
    client.force_login(dave)
    page = client.get(reverse("project-dashboard", args=[tags.pk])).content.decode()
    assert "Jaccard" in page
    client.force_login(charlie)
    assert client.get(reverse("project-dashboard", args=[tags.pk])).status_code == 404
    assert Item.objects.filter(project=tags).count() == 8


def test_the_suspect_list_offers_keep_only_for_sets(client, tags, make_items, bob, alice):
    from annotator.modelloop import predictions

    predictions._cache.clear()
    items = make_items(2, target=tags)
    _set_model(tags, items, [[1, 0, 0], [0, 1, 0]], [[0.02, 0.1, 0.1], [0.1, 0.9, 0.1]])
    for n, item in enumerate(items):
        submit_annotation(tags, bob, item_id=item.pk, labels=[["cat"], ["dog"]][n], idempotency_key=f"s{n}")
    client.force_login(alice)
    page = client.get(reverse("project-dashboard", args=[tags.pk])).content.decode()
    row = page.split(f'id="suspect-{items[0].pk}"')[1].split("</tr>")[0]
    assert "Keep {cat}" in row and "Relabel as" not in row and "contradicts a class" in page
    assert 'id="dash-set-audit"' in page and "exact-set match" in page
    reply = client.post(reverse("item-review", args=[tags.pk, items[0].pk]), {"label": ""})
    assert reply.status_code == 302
    assert Item.objects.get(pk=items[0].pk).reviewed_by == alice
