"""The labeling page and its endpoints: next, answer, skip, undo, replays and refusals. The
page speaks the API's labeling contract: its leases and answers are the API's JSON."""
import json
from datetime import timedelta

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.urls import reverse
from django.utils import timezone

from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.modelloop.status import trainer_status
from annotator.models import Annotation, Item, Lease
from annotator.projects.selectors import user_answer_count
from tests.conftest import api_client

JSON = {"HTTP_ACCEPT": "application/json"}
LEASE_KEYS = {"id", "image_url", "width", "height", "suggestion", "audit", "lease_expires"}
ANSWER_KEYS = {
    "id", "item", "label", "labels", "skipped", "unsure", "annotator", "created_at", "is_audit", "suggestion"}


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
    assert current and prefetched and current["id"] != prefetched["id"]
    assert set(current) == set(prefetched) == LEASE_KEYS
    assert set(Lease.objects.filter(user__username="bob").values_list("item_id", flat=True)) == {
        current["id"], prefetched["id"]
    }
    assert current["image_url"] == f"http://testserver/projects/{project.pk}/items/{current['id']}/image/"
    assert f'src="{current["image_url"]}"' in body
    names = {str(i.pk): i.original_name or f"image #{i.pk}" for i in Item.objects.filter(project=project)}
    assert state["items"] == {
        str(current["id"]): {"name": names[str(current["id"])], "previous": None},
        str(prefetched["id"]): {"name": names[str(prefetched["id"])], "previous": None},
    }
    assert f'id="item-name">{names[str(current["id"])]}<' in body
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
    # Rendered as label.js renders it: unsure (below 90%), so the runner-up shows with its hotkey.
    top = body.split('id="guess-top"')[1].split("</ol>")[0]
    assert " hidden" not in top.split(">")[0]
    assert '<li><kbd>2</kbd> <span>one</span><span class="muted"> 10%</span></li>' in top
    assert 'data-suggested' in body.split('value="two"')[1].split(">")[0]


def test_a_sure_guess_hides_the_runners_up_and_tiny_confidences_read_below_one(bob_client, project, bob, make_items):
    make_items(2)
    lease = lease_next(project, bob)
    lease.suggestion = {"label": "one", "confidence": 0.95, "top": [{"label": "one", "confidence": 0.95}, {"label": "two", "confidence": 0.05}]}
    lease.save()
    body = bob_client.get(reverse("label", args=[project.pk])).content.decode()
    assert '<span id="guess-confidence" class="muted">95%</span>' in body
    assert body.split('id="guess-top"')[1].split(">")[0].endswith(" hidden")
    lease.suggestion = {"label": "one", "confidence": 0.5, "top": [{"label": "one", "confidence": 0.5}, {"label": "two", "confidence": 0.004}]}
    lease.save()
    body = bob_client.get(reverse("label", args=[project.pk])).content.decode()
    assert '<span>two</span><span class="muted"> &lt;1%</span>' in body


def test_the_trainer_indicator_is_a_shell_with_the_status_as_json(bob_client, project, make_items):
    """static/js/live.js draws the indicator, on load from this JSON and then on every update."""
    make_items(1)
    response = bob_client.get(reverse("label", args=[project.pk]))
    indicator = response.content.decode().split("data-trainer-status")[1].split("</div>")[0]
    assert 'data-ts="phase">Model status…<' in indicator and 'data-phase="unknown"' in indicator
    embedded = json.loads(indicator.split('<script type="application/json">')[1].split("</script>")[0])
    assert embedded == json.loads(json.dumps(response.context["trainer_status"], cls=DjangoJSONEncoder))
    assert embedded.keys() == trainer_status(project).keys() and embedded["phase"] == "waiting"


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
    first, second = state["current"]["id"], state["next"]["id"]

    reply = _answer(bob_client, project, first, "key-1", label="two", duration_ms="1234", exclude=[second])
    assert reply.status_code == 200
    data = reply.json()
    assert set(data["saved"]) == ANSWER_KEYS
    assert (data["saved"]["item"], data["saved"]["label"], data["saved"]["skipped"]) == (first, "two", False)
    assert data["saved"]["annotator"] == "bob" and data["replayed"] is False
    third = data["next"]["id"]
    assert third not in {first, second}
    assert set(data["next"]) == LEASE_KEYS and set(data["items"]) == {str(third)}
    assert data["progress"] == {"total": 6, "labeled": 1, "mine": 1}

    reply = _answer(bob_client, project, second, "key-2", skip="1", exclude=[third])
    saved = reply.json()["saved"]
    assert (saved["item"], saved["label"], saved["skipped"]) == (second, None, True)

    annotation = Annotation.objects.get(annotator=bob, idempotency_key="key-1")
    assert (annotation.item_id, annotation.label.name, annotation.duration_ms, annotation.undone) == (first, "two", 1234, False)
    first_item = Item.objects.get(pk=first)
    assert (first_item.label_count, first_item.done) == (1, True)
    assert Annotation.objects.get(annotator=bob, idempotency_key="key-2").skipped

    # Undo takes back the skip (the latest answer): that item is current again, with the answer shown.
    data = _post(bob_client, project, "label-undo").json()
    assert (data["undone"]["item"], data["undone"]["label"], data["undone"]["skipped"]) == (second, None, True)
    assert data["undone"]["id"] == saved["id"]
    assert data["current"]["id"] == second and set(data["current"]) == LEASE_KEYS
    assert data["items"][str(second)]["previous"] == data["undone"]
    assert data["next"]["id"] != second
    assert data["items"][str(data["next"]["id"])]["previous"] is None
    skip = Annotation.objects.get(annotator=bob, idempotency_key="key-2")
    assert skip.undone
    assert user_answer_count(project, bob) == 1
    assert set(Lease.objects.filter(user=bob).values_list("item_id", flat=True)) == {second, data["next"]["id"]}

    # Answer it again with a class; the undone row stays as history.
    _answer(bob_client, project, second, "key-3", label="zero", exclude=[data["next"]["id"]])
    assert Annotation.objects.filter(item_id=second, annotator=bob).count() == 2
    assert Annotation.objects.get(item_id=second, annotator=bob, undone=False).label.name == "zero"


def test_label_next_skips_the_items_the_page_holds(bob_client, project, make_items):
    make_items(4)
    state = bob_client.get(reverse("label", args=[project.pk])).context["state"]
    held = [state["current"]["id"], state["next"]["id"]]
    assert _post(bob_client, project, "label-next", exclude=held[:1]).json()["next"]["id"] == held[1]
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
    item = page.context["state"]["current"]["id"]
    key = page.context["answer_key"]
    response = bob_client.post(reverse("label-answer", args=[project.pk]), {"item": item, "label": "one", "idempotency_key": key})
    assert response.status_code == 302
    assert Annotation.objects.get(annotator=bob, undone=False).item_id == item
    response = bob_client.post(reverse("label-undo", args=[project.pk]), follow=True)
    assert "Undid your answer" in response.content.decode()
    state = response.context["state"]
    assert state["current"]["id"] == item
    previous = state["items"][str(item)]["previous"]
    assert (previous["item"], previous["label"], previous["skipped"]) == (item, "one", False)
    body = response.content.decode()
    assert 'data-previous' in body.split('value="one"')[1].split(">")[0]
    assert 'data-previous' not in body.split('id="skip-button"')[1].split(">")[0]
    assert "Your previous answer:\n      <strong>one</strong>" in body


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
    assert "item" in reply.json()["error"] and "required" in reply.json()["error"]
    assert reply.json()["next"]["id"] == lease.item_id  # the page can go on
    assert not Annotation.objects.exists()


def test_the_page_checks_its_input_as_the_api_does(bob_client, project, bob, make_items):
    make_items(3)
    lease = lease_next(project, bob)
    for bad in [{"duration_ms": "-5"}, {"idempotency_key": ""}, {"idempotency_key": "x" * 101}]:
        reply = _post(bob_client, project, "label-answer", **{"item": lease.item_id, "idempotency_key": "k", "label": "one", **bad})
        assert reply.status_code == 400, bad
        field = next(iter(bad))
        assert reply.json()["error"].startswith(f"{field}: "), reply.json()
        api_reply = api_client(bob).post(
            f"/api/projects/{project.pk}/annotations/",
            {"item": lease.item_id, "idempotency_key": "k", "label": "one", **bad},
            format="json",
        )
        assert api_reply.status_code == 400 and set(api_reply.json()) == {field}
    reply = _post(bob_client, project, "label-next", exclude="nine")
    assert reply.status_code == 400 and reply.json()["error"].startswith("exclude ")
    assert not Annotation.objects.exists()


def test_the_pages_json_is_the_apis_for_the_same_lease_and_answer(bob_client, project, bob, make_items, monkeypatch):
    """The page and the API (here over the same session) answer with the same JSON for the
    same lease: same keys and values, image_url and the model's guess included."""
    make_items(5)
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)  # every lease refresh sets the same expiry
    guess = {"label": "one", "confidence": 0.6, "top": [{"label": "one", "confidence": 0.6}, {"label": "zero", "confidence": 0.3}]}
    Lease.objects.filter(pk=lease_next(project, bob).pk).update(suggestion=guess)

    def api_next(*exclude):
        reply = bob_client.post(f"/api/projects/{project.pk}/next/", {"exclude": list(exclude)}, content_type="application/json")
        assert reply.status_code == 200
        return reply.json()

    state = bob_client.get(reverse("label", args=[project.pk])).context["state"]
    current, prefetched = state["current"], state["next"]
    assert current["suggestion"] == guess
    assert json.loads(json.dumps(current)) == api_next()
    assert json.loads(json.dumps(prefetched)) == api_next(current["id"])

    body = {"item": current["id"], "label": "one", "idempotency_key": "same", "duration_ms": 700}
    page = _post(bob_client, project, "label-answer", exclude=[prefetched["id"]], **body).json()
    third = page["next"]
    assert third["id"] not in {current["id"], prefetched["id"]}
    assert set(third) == LEASE_KEYS and third == api_next(prefetched["id"])
    assert _post(bob_client, project, "label-next", exclude=[prefetched["id"]]).json()["next"] == third
    # The API's replay of the same answer is the answer the page got.
    replay = bob_client.post(f"/api/projects/{project.pk}/annotations/", body, content_type="application/json")
    assert replay.status_code == 200 and replay.json() == page["saved"]
    assert page["saved"]["suggestion"] == guess and set(page["saved"]) == ANSWER_KEYS

    undo = _post(bob_client, project, "label-undo", exclude=[prefetched["id"], third["id"]]).json()
    assert undo["current"] == api_next() and undo["current"]["id"] == current["id"]
    assert undo["current"]["suggestion"] == guess
    assert undo["undone"]["id"] == page["saved"]["id"]
    assert undo["undone"] == page["saved"]
    assert undo["items"][str(current["id"])]["previous"] == page["saved"]


def test_label_endpoints_refuse_get(bob_client, project):
    for name in ["label-next", "label-answer", "label-undo"]:
        assert bob_client.get(reverse(name, args=[project.pk])).status_code == 405
