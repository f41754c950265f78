"""Bulk answers: one class for many items, all or nothing, one batch undone as one, replayed
by key, never counted as audit answers, and used for training like any answer."""
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from annotator.access import Conflict, Forbidden, Invalid, NotFound
from annotator.dashboard.model_side import audit_curve
from annotator.labeling.answers import submit_annotation
from annotator.labeling.bulk import bulk_answer, undo_batch
from annotator.modelloop.arrays import label_arrays, ordered_class_ids
from annotator.modelloop.status import audit_accuracy
from annotator.models import Annotation, Item, Lease, Role
from annotator.projects.changes import create_project
from tests.annotator.labeling.bulk_helpers import publish


def _bulk(project, user, items, key="b-1", **answer):
    answer = answer or {"label": "two"}
    return bulk_answer(project, user, items=[i.pk for i in items], idempotency_key=key, **answer)


def _counts(items):
    return [(i.label_count, i.done) for i in Item.objects.filter(pk__in=[i.pk for i in items]).order_by("pk")]


def _lease(project, user, item, audit=False, seconds=300):
    return Lease.objects.create(project=project, item=item, user=user, is_audit=audit,
                                expires_at=timezone.now() + timedelta(seconds=seconds))


def test_it_stores_one_batch_of_bulk_answers(project, bob, make_items):
    items = make_items(5)
    _lease(project, bob, items[0])  # the image bob had on the labeling page
    result = _bulk(project, bob, items[:4])
    assert result.created and len(result.batch) == 32
    stored = Annotation.objects.filter(batch=result.batch).order_by("item_id")
    assert [a.item_id for a in stored] == [i.pk for i in items[:4]] == result.items
    assert {(a.source, a.label.name, a.is_audit, a.annotator.username) for a in stored} == {("bulk", "two", False, "bob")}
    assert _counts(items) == [(1, True)] * 4 + [(0, False)]
    assert not Lease.objects.filter(user=bob).exists()


def test_a_retry_with_the_same_key_returns_the_same_batch(project, bob, make_items):
    items = make_items(3)
    first = _bulk(project, bob, items)
    again = bulk_answer(project, bob, items=[i.pk for i in reversed(items)], label="two", idempotency_key="b-1")
    assert not again.created and again.batch == first.batch
    assert Annotation.objects.count() == 3 and _counts(items) == [(1, True)] * 3
    with pytest.raises(Conflict, match="already used for another request"):
        _bulk(project, bob, items, label="one")


@pytest.mark.parametrize("bad", ["elsewhere", "answered", "held", "done"])
def test_one_bad_item_refuses_the_whole_request(project, alice, bob, make_items, bad):
    items = make_items(4)
    other = create_project(alice, name="Other", classes=["zero", "one", "two"])
    if bad == "elsewhere":
        items[2] = make_items(1, target=other)[0]
    elif bad == "answered":
        submit_annotation(project, bob, item_id=items[2].pk, skip=True, idempotency_key="s")
    elif bad == "held":
        _lease(project, alice, items[2])
    else:
        submit_annotation(project, alice, item_id=items[2].pk, label="one", idempotency_key="a")
    before = Annotation.objects.count()
    with pytest.raises(Invalid if bad == "elsewhere" else Conflict, match="nothing was saved"):
        _bulk(project, bob, items)
    assert Annotation.objects.count() == before
    assert not Annotation.objects.filter(source="bulk").exists()
    kept = [i for j, i in enumerate(items) if j != 2]
    assert _counts(kept) == [(0, False)] * 3


def test_an_expired_lease_of_another_annotator_does_not_block(project, alice, bob, make_items):
    items = make_items(2)
    _lease(project, alice, items[0], seconds=-5)
    assert _bulk(project, bob, items).created


@pytest.mark.parametrize(
    ("items", "answer", "message"),
    [
        ("none", {"label": "two"}, "non-empty"),
        ("dup", {"label": "two"}, "twice"),
        ("ok", {"label": "nine"}, "Unknown class 'nine'"),
        ("ok", {"labels": ["two"]}, "one class per image"),
        ("ok", {}, "Give the class"),
    ],
)
def test_malformed_requests_are_refused(project, bob, make_items, items, answer, message):
    made = make_items(2)
    ids = {"ok": [i.pk for i in made], "dup": [made[0].pk, made[0].pk], "none": []}[items]
    with pytest.raises(Invalid, match=message):
        bulk_answer(project, bob, items=ids, idempotency_key="k", **(answer or {"label": None}))
    assert not Annotation.objects.exists()


def test_the_item_limit_is_a_clear_refusal(project, bob, make_items, settings):
    settings.BULK_MAX_ITEMS = 3
    with pytest.raises(Invalid, match="At most 3 items per bulk answer; this one has 4"):
        _bulk(project, bob, make_items(4))


def test_undo_restores_the_item_counts(project, alice, bob, make_items):
    project.annotations_per_item = 2
    project.save()
    items = make_items(3)
    submit_annotation(project, alice, item_id=items[0].pk, label="one", idempotency_key="a")
    result = _bulk(project, bob, items)
    assert _counts(items) == [(2, True), (1, False), (1, False)]
    undone = undo_batch(project, bob, result.batch)
    assert undone.undone and undone.items == [i.pk for i in items]
    assert _counts(items) == [(1, False), (0, False), (0, False)]
    assert undo_batch(project, bob, result.batch).undone  # again: nothing changes
    assert _counts(items) == [(1, False), (0, False), (0, False)]
    assert Annotation.objects.filter(undone=False).count() == 1
    assert _bulk(project, bob, items[1:], key="b-2").created  # the items can be answered again


def test_only_the_author_or_an_owner_undoes_a_batch(project, alice, bob, make_items):
    bobs = _bulk(project, bob, make_items(2))
    alices = _bulk(project, alice, make_items(2), key="a-1")
    bob_project = type(project).objects.get(pk=project.pk)
    bob_project.current_role = Role.ANNOTATOR
    with pytest.raises(Forbidden, match="person who labeled this batch"):
        undo_batch(bob_project, bob, alices.batch)
    owner_project = type(project).objects.get(pk=project.pk)
    owner_project.current_role = Role.OWNER
    assert undo_batch(owner_project, alice, bobs.batch).undone
    with pytest.raises(NotFound):
        undo_batch(owner_project, alice, "0" * 32)


def test_bulk_answers_never_count_as_audit_answers(project, bob, make_items):
    items = make_items(4)
    publish(project, [[0.1, 0.2, 0.7]] * 4, [i.pool_index for i in items])
    _lease(project, bob, items[0], audit=True)  # drawn as an audit item, then labeled in bulk
    _bulk(project, bob, items)
    assert not Annotation.objects.filter(is_audit=True).exists()
    stored = Annotation.objects.get(item=items[0])
    assert stored.suggestion["label"] == "two" and stored.model_version is not None
    assert audit_accuracy(project)["n"] == 0
    assert audit_curve(project) == []


def test_bulk_answers_train_the_model(project, bob, make_items):
    items = make_items(3)
    _bulk(project, bob, items[:2])
    pool_index = np.array([i.pool_index for i in items])
    labels, _soft = label_arrays(project, pool_index, ordered_class_ids(project)[0])
    assert labels.tolist() == [2, 2, -1]


def test_multi_label_projects_take_a_set_for_every_item(alice, make_items):
    tags = create_project(alice, name="Tags", classes=["cat", "dog", "car"], audit_fraction=0.0, multi_label=True)
    items = make_items(3, target=tags)
    result = _bulk(tags, alice, items, labels=["dog", "cat"])
    for annotation in result.annotations:
        assert annotation.label_id is None and sorted(c.name for c in annotation.labels.all()) == ["cat", "dog"]
    with pytest.raises(Invalid, match="multi-label"):
        _bulk(tags, alice, make_items(1, target=tags), key="b-2", label="cat")
