"""The labeling page and its endpoints: next, answer, skip, undo, replays and refusals."""
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.models import Annotation, Item, Lease
from annotator.projects.selectors import user_answer_count

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


def _post(client, project, name, **data):
    return client.post(reverse(name, args=[project.pk]), data, **JSON)


def _answer(client, project, item, key, **data):
    return _post(client, project, "label-answer", item=item, idempotency_key=key, **data)


def test_page_shows_current_item_classes_hotkeys_and_prefetch(bob_client, project, make_items):
    make_items(5)
    response = bob_client.get(reverse("label", args=[project.pk]))
    body = response.content.decode()
    state = response.context["state"]
    current, prefetched = state["current"], state["next"]
    assert current and prefetched and current["item"] != prefetched["item"]
    assert set(Lease.objects.filter(user__username="bob").values_list("item_id", flat=True)) == {
        current["item"], prefetched["item"]
    }
    assert f'src="{current["url"]}"' in body
    for key, name in [("1", "zero"), ("2", "one"), ("3", "two")]:
        assert f'data-hotkey="{key}"' in body and f'value="{name}"' in body
    assert "No model guess yet" in body
    assert state["progress"] == {"total": 5, "labeled": 0, "mine": 0}
    assert 'id="label-state"' in body and "js/label.js" in body


def test_page_shows_the_model_guess_when_the_lease_has_one(bob_client, project, bob, make_items):
    make_items(2)
    lease = lease_next(project, bob)
    lease.suggestion = {"label": "two", "confidence": 0.87, "top": [{"label": "two", "confidence": 0.87}, {"label": "one", "confidence": 0.1}]}
    lease.save()
    response = bob_client.get(reverse("label", args=[project.pk]))
    assert response.context["state"]["current"]["suggestion"] == {
        "label": "two", "confidence": 0.87, "top": [{"label": "two", "confidence": 0.87}, {"label": "one", "confidence": 0.1}]
    }
    body = response.content.decode()
    assert "87%" in body and "data-empty" not in body.split('id="guess"')[1][:40]


def test_empty_pool_links_to_import_for_owners(client, project, alice):
    client.force_login(alice)
    body = client.get(reverse("label", args=[project.pk])).content.decode()
    assert "This project has no images yet" in body
    assert reverse("project-detail", args=[project.pk]) + "#import-title" in body


def test_nothing_left_says_so(bob_client, project, make_items):
    [item] = make_items(1)
    _answer(bob_client, project, item.pk, "k1", label="one")
    body = bob_client.get(reverse("label", args=[project.pk])).content.decode()
    assert "Nothing left to label right now" in body


def test_answer_round_trip_with_skip_and_undo(bob_client, project, bob, make_items):
    make_items(6)
    state = bob_client.get(reverse("label", args=[project.pk])).context["state"]
    first, second = state["current"]["item"], state["next"]["item"]

    reply = _answer(bob_client, project, first, "key-1", label="two", duration_ms="1234", exclude=[second])
    assert reply.status_code == 200
    data = reply.json()
    assert data["saved"] == {"item": first, "label": "two", "skip": False}
    third = data["next"]["item"]
    assert third not in {first, second}
    assert data["progress"] == {"total": 6, "labeled": 1, "mine": 1}

    reply = _answer(bob_client, project, second, "key-2", skip="1", exclude=[third])
    assert reply.json()["saved"] == {"item": second, "label": None, "skip": True}

    annotation = Annotation.objects.get(annotator=bob, idempotency_key="key-1")
    assert (annotation.item_id, annotation.label.name, annotation.duration_ms, annotation.undone) == (first, "two", 1234, False)
    first_item = Item.objects.get(pk=first)
    assert (first_item.label_count, first_item.done) == (1, True)
    assert Annotation.objects.get(annotator=bob, idempotency_key="key-2").skipped

    # Undo takes back the skip (the latest answer): that item is current again, with the answer shown.
    data = _post(bob_client, project, "label-undo").json()
    assert data["undone"] == {"item": second, "label": None, "skip": True}
    assert data["current"]["item"] == second
    assert data["current"]["previous"] == {"item": second, "label": None, "skip": True}
    assert data["next"]["item"] != second
    skip = Annotation.objects.get(annotator=bob, idempotency_key="key-2")
    assert skip.undone
    assert user_answer_count(project, bob) == 1
    assert set(Lease.objects.filter(user=bob).values_list("item_id", flat=True)) == {second, data["next"]["item"]}

    # Answer it again with a class; the undone row stays as history.
    _answer(bob_client, project, second, "key-3", label="zero", exclude=[data["next"]["item"]])
    assert Annotation.objects.filter(item_id=second, annotator=bob).count() == 2
    assert Annotation.objects.get(item_id=second, annotator=bob, undone=False).label.name == "zero"


def test_label_next_skips_the_items_the_page_holds(bob_client, project, make_items):
    make_items(4)
    state = bob_client.get(reverse("label", args=[project.pk])).context["state"]
    held = [state["current"]["item"], state["next"]["item"]]
    assert _post(bob_client, project, "label-next", exclude=held[:1]).json()["next"]["item"] == held[1]
    # Two leases are the most one user holds: a third is refused until one is answered.
    assert _post(bob_client, project, "label-next", exclude=held).json()["next"] is None


def test_replaying_an_idempotency_key_makes_one_row(bob_client, project, bob, make_items):
    [item, _] = make_items(2)
    lease = lease_next(project, bob)
    first = _answer(bob_client, project, lease.item_id, "same-key", label="one")
    again = _answer(bob_client, project, lease.item_id, "same-key", label="one")
    assert first.status_code == again.status_code == 200
    assert again.json()["replayed"] is True
    assert Annotation.objects.filter(annotator=bob, idempotency_key="same-key").count() == 1
    assert Item.objects.get(pk=lease.item_id).label_count == 1


def test_a_taken_item_gives_409_with_the_message(bob_client, project, alice, bob, make_items):
    make_items(3)
    lease = lease_next(project, bob)
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = lease_next(project, alice)
    assert taken.item_id == lease.item_id
    submit_annotation(project, alice, item_id=taken.item_id, label="zero", idempotency_key="a1")

    reply = _answer(bob_client, project, lease.item_id, "bob-1", label="one")
    assert reply.status_code == 409
    data = reply.json()
    assert "was not saved" in data["error"] and "(one)" in data["error"]
    assert data["next"] is not None  # the page can go on
    assert not Annotation.objects.filter(annotator=bob).exists()


def test_a_plain_form_post_redirects_and_shows_the_refusal(bob_client, project, alice, bob, make_items):
    make_items(2)
    lease = lease_next(project, bob)
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    submit_annotation(project, alice, item_id=lease_next(project, alice).item_id, label="zero", idempotency_key="a1")
    response = bob_client.post(
        reverse("label-answer", args=[project.pk]), {"item": lease.item_id, "label": "two", "idempotency_key": "f1"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("label", args=[project.pk])
    assert "was not saved" in response.content.decode()


def test_a_plain_form_post_labels_and_undoes(bob_client, project, bob, make_items):
    make_items(3)
    page = bob_client.get(reverse("label", args=[project.pk]))
    item = page.context["state"]["current"]["item"]
    key = page.context["answer_key"]
    response = bob_client.post(reverse("label-answer", args=[project.pk]), {"item": item, "label": "one", "idempotency_key": key})
    assert response.status_code == 302
    assert Annotation.objects.get(annotator=bob, undone=False).item_id == item
    response = bob_client.post(reverse("label-undo", args=[project.pk]), follow=True)
    assert "Undid your answer" in response.content.decode()
    assert response.context["state"]["current"]["item"] == item
    assert response.context["state"]["current"]["previous"] == {"item": item, "label": "one", "skip": False}
    assert 'data-previous' in response.content.decode()


def test_undo_with_nothing_to_undo_says_so(bob_client, project, make_items):
    make_items(1)
    reply = _post(bob_client, project, "label-undo")
    assert reply.status_code == 400
    assert "no answer of yours to undo" in reply.json()["error"]


def test_an_unknown_class_is_refused(bob_client, project, bob, make_items):
    make_items(1)
    lease = lease_next(project, bob)
    reply = _answer(bob_client, project, lease.item_id, "k", label="seven")
    assert reply.status_code == 400
    assert "Unknown class" in reply.json()["error"]
    reply = _post(bob_client, project, "label-answer", label="one", idempotency_key="k2")
    assert reply.status_code == 400
    assert not Annotation.objects.exists()


def test_label_endpoints_refuse_get(bob_client, project):
    for name in ["label-next", "label-answer", "label-undo"]:
        assert bob_client.get(reverse(name, args=[project.pk])).status_code == 405
