"""POST /api/projects/{id}/annotations/: answers, exactly once per idempotency key."""
from datetime import timedelta

from django.utils import timezone

from annotator.models import Annotation, Item, Lease
from annotator.projects.changes import create_project


def _next(client, project, **body):
    return client.post(f"/api/projects/{project.pk}/next/", body, format="json")


def _answer(client, project, **body):
    return client.post(f"/api/projects/{project.pk}/annotations/", body, format="json")


def test_it_stores_an_answer_then_replays_it(project, api, bob, make_items):
    make_items(3)
    client = api(bob)
    item = _next(client, project).json()["id"]
    body = {"item": item, "label": "two", "idempotency_key": "k-1", "duration_ms": 1500}
    first = _answer(client, project, **body)
    assert first.status_code == 201
    assert set(first.json()) == {
        "id", "item", "label", "labels", "skipped", "unsure", "annotator", "created_at", "is_audit", "suggestion"}
    assert first.json()["item"] == item
    assert first.json()["label"] == "two"
    assert first.json()["annotator"] == "bob"
    assert first.json()["skipped"] is False

    replay = _answer(client, project, **body)
    assert replay.status_code == 200
    assert replay.json() == first.json()

    annotation = Annotation.objects.get()
    assert (annotation.item_id, annotation.annotator, annotation.label.name) == (item, bob, "two")
    assert annotation.duration_ms == 1500
    stored = Item.objects.get(pk=item)
    assert stored.label_count == 1 and stored.done
    assert not Lease.objects.filter(user=bob, item_id=item).exists()


def test_the_same_key_with_another_body_is_a_conflict(project, api, bob, make_items):
    make_items(3)
    client = api(bob)
    item = _next(client, project).json()["id"]
    assert _answer(client, project, item=item, label="two", idempotency_key="k-1").status_code == 201
    r = _answer(client, project, item=item, label="one", idempotency_key="k-1")
    assert r.status_code == 409
    assert "already used for a different answer" in r.json()["detail"]
    assert Annotation.objects.get().label.name == "two"


def test_a_second_answer_to_the_same_item_is_a_conflict(project, api, bob, make_items):
    make_items(3)
    client = api(bob)
    item = _next(client, project).json()["id"]
    assert _answer(client, project, item=item, label="two", idempotency_key="k-1").status_code == 201
    r = _answer(client, project, item=item, label="one", idempotency_key="k-2")
    assert r.status_code == 409
    assert "Undo your answer" in r.json()["detail"]
    assert Annotation.objects.count() == 1


def test_a_late_answer_is_accepted_while_the_item_is_open(project, api, bob, make_items):
    make_items(1)
    client = api(bob)
    item = _next(client, project).json()["id"]
    Lease.objects.filter(user=bob).update(expires_at=timezone.now() - timedelta(minutes=1))
    r = _answer(client, project, item=item, label="zero", idempotency_key="late")
    assert r.status_code == 201
    assert Item.objects.get(pk=item).done


def test_a_late_answer_is_refused_when_another_annotator_labeled_the_item(project, api, alice, bob, make_items):
    make_items(1)
    item = _next(api(bob), project).json()["id"]
    Lease.objects.filter(user=bob).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert _next(api(alice), project).json()["id"] == item
    assert _answer(api(alice), project, item=item, label="one", idempotency_key="a-1").status_code == 201

    r = _answer(api(bob), project, item=item, label="two", idempotency_key="b-1")
    assert r.status_code == 409
    assert "was not saved" in r.json()["detail"]
    assert not Annotation.objects.filter(annotator=bob).exists()
    assert Item.objects.get(pk=item).label_count == 1


def test_it_stores_a_skip(project, api, bob, make_items):
    make_items(2)
    client = api(bob)
    item = _next(client, project).json()["id"]
    r = _answer(client, project, item=item, skip=True, idempotency_key="s-1")
    assert r.status_code == 201
    assert r.json()["skipped"] is True
    assert r.json()["label"] is None
    stored = Item.objects.get(pk=item)
    assert stored.label_count == 0 and not stored.done
    # Bob is not served the skipped item again.
    assert _next(client, project).json()["id"] != item


def test_it_records_the_suggestion_and_audit_flag_of_the_lease(project, api, bob, make_items):
    make_items(1)
    client = api(bob)
    item = _next(client, project).json()["id"]
    guess = {"label": "one", "confidence": 0.6, "top": [{"label": "one", "confidence": 0.6}]}
    Lease.objects.filter(user=bob).update(suggestion=guess, is_audit=True)
    r = _answer(client, project, item=item, label="one", idempotency_key="k")
    assert r.json()["suggestion"] == guess
    assert r.json()["is_audit"] is True


def test_the_annotator_is_the_caller_whatever_the_body_says(project, api, bob, make_items):
    make_items(1)
    client = api(bob)
    item = _next(client, project).json()["id"]
    r = _answer(client, project, item=item, label="one", idempotency_key="k", annotator="alice")
    assert r.status_code == 201
    assert Annotation.objects.get().annotator == bob


def test_it_rejects_an_unknown_class_with_the_list_of_classes(project, api, bob, make_items):
    make_items(1)
    client = api(bob)
    item = _next(client, project).json()["id"]
    r = _answer(client, project, item=item, label="three", idempotency_key="k")
    assert r.status_code == 400
    assert r.json()["detail"] == "Unknown class 'three'. This project's classes are: zero, one, two."
    assert not Annotation.objects.exists()


def test_it_rejects_an_item_of_another_project(project, api, alice, bob, make_items):

    other = create_project(alice, name="Other", classes=["a", "b"])
    [foreign] = make_items(1, target=other)
    r = _answer(api(bob), project, item=foreign.pk, label="one", idempotency_key="k")
    assert r.status_code == 400
    assert "not in this project" in r.json()["detail"]
    assert not Annotation.objects.exists()


def test_it_requires_an_idempotency_key(project, api, bob, make_items):
    make_items(1)
    client = api(bob)
    item = _next(client, project).json()["id"]
    r = _answer(client, project, item=item, label="one")
    assert r.status_code == 400
    assert "fresh random string per answer" in r.json()["idempotency_key"][0]
    r = _answer(client, project, item=item, label="one", idempotency_key="")
    assert r.status_code == 400
    assert not Annotation.objects.exists()


def test_it_requires_exactly_one_of_label_and_skip(project, api, bob, make_items):
    make_items(1)
    client = api(bob)
    item = _next(client, project).json()["id"]
    neither = _answer(client, project, item=item, idempotency_key="k1")
    assert neither.status_code == 400
    assert "either a class name" in neither.json()["detail"]
    both = _answer(client, project, item=item, label="one", skip=True, idempotency_key="k2")
    assert both.status_code == 400
    assert "not both" in both.json()["detail"]
    assert not Annotation.objects.exists()


def test_it_requires_an_item(project, api, bob):
    r = _answer(api(bob), project, label="one", idempotency_key="k")
    assert r.status_code == 400
    assert r.json()["item"] == ["This field is required."]


def test_viewers_cannot_answer(project, api, dave, make_items):
    [item] = make_items(1)
    r = _answer(api(dave), project, item=item.pk, label="one", idempotency_key="k")
    assert r.status_code == 403
    assert not Annotation.objects.exists()


def test_it_rejects_outsider(project, api, charlie, make_items):
    [item] = make_items(1)
    r = _answer(api(charlie), project, item=item.pk, label="one", idempotency_key="k")
    assert r.status_code == 404
    assert not Annotation.objects.exists()


def test_it_rejects_anonymous(project, api, make_items):
    [item] = make_items(1)
    r = _answer(api(None), project, item=item.pk, label="one", idempotency_key="k")
    assert r.status_code in (401, 403)
    assert not Annotation.objects.exists()


def test_it_rejects_out_of_range_numbers(project, api, bob, make_items):
    make_items(1)
    client = api(bob)
    item = _next(client, project).json()["id"]
    r = _answer(client, project, item=2**70, label="one", idempotency_key="k1")
    assert r.status_code == 400
    assert "item" in r.json()
    r = _answer(client, project, item=item, label="one", idempotency_key="k2", duration_ms=-5)
    assert r.status_code == 400
    assert "greater than or equal to 0" in r.json()["duration_ms"][0]
    assert not Annotation.objects.exists()
