"""The kinds of answer: one class, a set of classes (multi-label projects; [] means none
applies), a skip, and "unsure" (a skip that goes to review). Shape errors are refused with a
sentence and store nothing; retries replay by fingerprint."""
import pytest

from annotator.access import Conflict, Invalid
from annotator.labeling.answers import submit_annotation
from annotator.models import Annotation, Role
from annotator.projects.changes import create_project
from annotator.projects.members import add_member


@pytest.fixture
def tags(alice, bob):
    project = create_project(alice, name="Tags", classes=["cat", "dog", "car"], audit_fraction=0.0, multi_label=True)
    add_member(project, "bob", Role.ANNOTATOR)
    return project


def _answer(project, user, item, key, **answer):
    return submit_annotation(project, user, item_id=item.pk, idempotency_key=key, **answer)


def test_multi_label_answer_stores_the_set_in_class_order(tags, bob, make_items):
    item = make_items(1, target=tags)[0]
    result = _answer(tags, bob, item, "k1", labels=["car", "cat"])
    stored = Annotation.objects.get(pk=result.annotation.pk)
    assert stored.label_id is None and not stored.skipped
    assert sorted(c.name for c in stored.labels.all()) == ["car", "cat"]
    item.refresh_from_db()
    assert item.label_count == 1 and item.done


def test_empty_set_means_none_applies_and_counts_as_a_label(tags, bob, make_items):
    item = make_items(1, target=tags)[0]
    result = _answer(tags, bob, item, "k1", labels=[])
    assert result.annotation.labels.count() == 0 and not result.annotation.skipped
    item.refresh_from_db()
    assert item.label_count == 1


def test_retry_with_same_set_in_another_order_replays(tags, bob, make_items):
    item = make_items(1, target=tags)[0]
    first = _answer(tags, bob, item, "k1", labels=["cat", "dog"])
    again = _answer(tags, bob, item, "k1", labels=["dog", "cat"])
    assert not again.created and again.annotation.pk == first.annotation.pk
    with pytest.raises(Conflict):
        _answer(tags, bob, item, "k1", labels=["dog"])


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"label": "cat"}, "multi-label"),
        ({}, "'labels'"),
        ({"labels": ["cat", "cat"]}, "twice"),
        ({"labels": ["cat", "bird"]}, "Unknown class 'bird'"),
        ({"labels": ["cat"], "skip": True}, "not both"),
    ],
)
def test_malformed_multi_label_answers_are_refused(tags, bob, make_items, answer, message):
    item = make_items(1, target=tags)[0]
    with pytest.raises(Invalid, match=message):
        _answer(tags, bob, item, "k1", **answer)
    assert not Annotation.objects.exists()


def test_single_label_project_refuses_a_list(project, bob, make_items):
    item = make_items(1)[0]
    with pytest.raises(Invalid, match="one class per image"):
        _answer(project, bob, item, "k1", labels=["one"])


@pytest.mark.parametrize("fixture", ["project", "tags"])
def test_unsure_is_a_skip_with_its_flag(request, bob, make_items, fixture):
    target = request.getfixturevalue(fixture)
    item = make_items(1, target=target)[0]
    result = _answer(target, bob, item, "k1", unsure=True)
    assert result.annotation.unsure and result.annotation.skipped and result.annotation.label_id is None
    item.refresh_from_db()
    assert item.label_count == 0 and not item.done
    with pytest.raises(Invalid, match="unsure"):
        _answer(target, bob, make_items(1, target=target)[0], "k2", unsure=True, skip=True)


def test_unsure_with_a_class_is_refused(project, bob, make_items):
    with pytest.raises(Invalid, match="no class"):
        _answer(project, bob, make_items(1)[0], "k1", unsure=True, label="one")


def test_api_answer_and_record_show_labels_and_unsure(tags, bob, alice, make_items, api):
    a, b = make_items(2, target=tags)
    url = f"/api/projects/{tags.pk}/annotations/"
    reply = api(bob).post(url, {"item": a.pk, "labels": ["dog", "cat"], "idempotency_key": "x1"}, format="json")
    assert reply.status_code == 201, reply.content
    assert reply.json()["labels"] == ["cat", "dog"] and reply.json()["label"] is None
    reply = api(bob).post(url, {"item": b.pk, "unsure": True, "idempotency_key": "x2"}, format="json")
    assert reply.status_code == 201 and reply.json()["unsure"] is True and reply.json()["labels"] is None
    listed = api(alice).get(url, {"label": "dog"}).json()["results"]
    assert [r["item"] for r in listed] == [a.pk] and listed[0]["labels"] == ["cat", "dog"]
    reply = api(bob).post(url, {"item": b.pk, "label": "cat", "idempotency_key": "x3"}, format="json")
    assert reply.status_code == 400 and "multi-label" in reply.json()["detail"]


def test_api_creates_a_multi_label_project(alice, api):
    reply = api(alice).post("/api/projects/", {"name": "T", "classes": ["a", "b"], "multi_label": True}, format="json")
    assert reply.status_code == 201, reply.content
    assert reply.json()["multi_label"] is True
