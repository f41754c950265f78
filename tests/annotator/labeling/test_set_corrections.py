"""Owners correct a multi-label answer's set (PATCH with `labels`); the history keeps the old
and new sets as text ("{cat, dog}", "{}" for none); annotators, viewers and outsiders cannot."""
import pytest

from annotator.labeling.answers import submit_annotation
from annotator.models import Annotation, AnnotationChange


@pytest.fixture
def answer(tags, bob, make_items):
    item = make_items(1, target=tags)[0]
    return submit_annotation(tags, bob, item_id=item.pk, labels=["dog", "cat"], idempotency_key="k").annotation


def _url(project, annotation):
    return f"/api/projects/{project.pk}/annotations/{annotation.pk}/"


def test_an_owner_corrects_the_set_and_the_history_keeps_both(tags, api, alice, answer):
    reply = api(alice).patch(_url(tags, answer), {"labels": ["car"]}, format="json")
    assert reply.status_code == 200, reply.content
    assert reply.json()["labels"] == ["car"]
    [change] = reply.json()["changes"]
    assert (change["old_label"], change["new_label"], change["action"]) == ("{cat, dog}", "{car}", "correct")
    reply = api(alice).patch(_url(tags, answer), {"labels": []}, format="json")
    assert reply.json()["labels"] == [] and reply.json()["changes"][-1]["new_label"] == "{}"
    reply = api(alice).patch(_url(tags, answer), {"labels": []}, format="json")  # the same set: nothing recorded
    assert len(reply.json()["changes"]) == 2
    reply = api(alice).delete(_url(tags, answer))
    assert AnnotationChange.objects.filter(action="delete").get().old_label == "{}"


@pytest.mark.parametrize(("body", "message"), [
    ({"label": "cat"}, "multi-label"),
    ({"labels": ["cat", "cat"]}, "twice"),
    ({"labels": ["bird"]}, "Unknown class 'bird'"),
    ({}, "label"),
])
def test_a_malformed_correction_is_refused_with_a_sentence(tags, api, alice, answer, body, message):
    reply = api(alice).patch(_url(tags, answer), body, format="json")
    assert reply.status_code == 400 and message in str(reply.json())
    assert sorted(c.name for c in Annotation.objects.get(pk=answer.pk).labels.all()) == ["cat", "dog"]
    assert not AnnotationChange.objects.exists()


def test_a_single_label_project_refuses_a_list(project, api, alice, bob, make_items):
    item = make_items(1)[0]
    answer = submit_annotation(project, bob, item_id=item.pk, label="one", idempotency_key="k").annotation
    reply = api(alice).patch(_url(project, answer), {"labels": ["two"]}, format="json")
    assert reply.status_code == 400 and "one class per image" in reply.json()["detail"]


@pytest.mark.parametrize(("who", "status"), [("bob", 403), ("dave", 403), ("charlie", 404)])
def test_wrong_roles_and_outsiders_cannot_correct(tags, api, answer, request, who, status):
    reply = api(request.getfixturevalue(who)).patch(_url(tags, answer), {"labels": ["car"]}, format="json")
    assert reply.status_code == status
    assert sorted(c.name for c in Annotation.objects.get(pk=answer.pk).labels.all()) == ["cat", "dog"]
