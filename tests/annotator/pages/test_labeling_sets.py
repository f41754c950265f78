"""The labeling page of a multi-label project: checkboxes pre-checked with the model's set,
and the set posted with the `labels_sent` marker, so that an empty set ("none applies") is an
answer; skip and undo as before; viewers and outsiders refused."""
import pytest
from django.urls import reverse

from annotator.labeling.leasing import lease_next
from annotator.models import Annotation

JSON = {"HTTP_ACCEPT": "application/json"}
SUGGESTION = {"label": "dog", "confidence": 0.9, "top": [{"label": "dog", "confidence": 0.9}],
              "labels": ["cat", "dog"], "set_confidence": 0.72}


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


def _answer(client, project, item, key, **data):
    return client.post(reverse("label-answer", args=[project.pk]), {"item": item, "idempotency_key": key, **data},
                       **JSON)


def _set(annotation):
    return sorted(c.name for c in annotation.labels.all())


def test_the_page_shows_checkboxes_with_the_suggested_set_checked(bob_client, bob, tags, make_items):
    make_items(3, target=tags)
    lease = lease_next(tags, bob)
    lease.suggestion = SUGGESTION
    lease.save(update_fields=["suggestion"])
    body = bob_client.get(reverse("label", args=[tags.pk])).content.decode()
    assert "data-multi-label" in body and 'name="labels_sent"' in body
    boxes = {part.split('value="')[1].split('"')[0]: part.split(">")[0] for part in body.split('type="checkbox"')[1:]}
    assert set(boxes) == {"cat", "dog", "car"}
    assert "checked" in boxes["cat"] and "checked" in boxes["dog"] and "checked" not in boxes["car"]
    assert "Model guess</span>: <strong id=\"guess-label\">cat, dog</strong>" in body and "72%" in body
    assert "Save 2 classes" in body and "Save the checked classes" in body


def test_a_set_an_empty_set_and_a_skip_are_saved(bob_client, bob, tags, make_items):
    a, b, c = make_items(3, target=tags)
    reply = _answer(bob_client, tags, a.pk, "k1", labels_sent="1", labels=["dog", "cat"])
    assert reply.status_code == 200, reply.content
    assert reply.json()["saved"]["labels"] == ["cat", "dog"]
    reply = _answer(bob_client, tags, b.pk, "k2", labels_sent="1")  # nothing checked: none applies
    assert reply.status_code == 200 and reply.json()["saved"]["labels"] == []
    reply = _answer(bob_client, tags, c.pk, "k3", labels_sent="1", labels=["car"], skip="1")  # skip wins
    assert reply.json()["saved"]["skipped"] is True
    stored = {x.item_id: x for x in Annotation.objects.all()}
    assert _set(stored[a.pk]) == ["cat", "dog"] and _set(stored[b.pk]) == [] and not stored[b.pk].skipped
    assert stored[c.pk].skipped and _set(stored[c.pk]) == []
    reply = bob_client.post(reverse("label-undo", args=[tags.pk]), {}, **JSON)
    assert reply.status_code == 200 and reply.json()["undone"]["item"] == c.pk


def test_without_the_marker_a_set_answer_is_refused_with_a_sentence(bob_client, tags, make_items):
    item = make_items(1, target=tags)[0]
    reply = _answer(bob_client, tags, item.pk, "k1", label="cat")
    assert reply.status_code == 400 and "multi-label" in reply.json()["error"]
    reply = _answer(bob_client, tags, item.pk, "k2", labels_sent="1", labels=["bird"])
    assert reply.status_code == 400 and "Unknown class 'bird'" in reply.json()["error"]
    assert not Annotation.objects.exists()


def test_a_plain_form_post_saves_the_set_and_reloads_the_page(bob_client, tags, make_items):
    item = make_items(1, target=tags)[0]
    reply = bob_client.post(reverse("label-answer", args=[tags.pk]),
                            {"item": item.pk, "idempotency_key": "f1", "labels_sent": "1", "labels": ["car"]})
    assert reply.status_code == 302
    assert _set(Annotation.objects.get()) == ["car"]


@pytest.mark.parametrize(("who", "status"), [("dave", 403), ("charlie", 404)])
def test_viewers_and_outsiders_cannot_answer(client, tags, make_items, request, who, status):
    item = make_items(1, target=tags)[0]
    client.force_login(request.getfixturevalue(who))
    assert client.get(reverse("label", args=[tags.pk])).status_code == status
    assert _answer(client, tags, item.pk, "k1", labels_sent="1").status_code == status
    assert not Annotation.objects.exists()
