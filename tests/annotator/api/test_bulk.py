"""POST /api/projects/<id>/annotations/bulk/, GET .../bulk/candidates/ and POST
.../bulk/<batch>/undo/: who may call them, all or nothing, replays, undo, and the candidates."""
import numpy as np
import pytest

from annotator.labeling.answers import submit_annotation
from annotator.models import Annotation, Item
from tests.annotator.labeling.bulk_helpers import publish


def _url(project, tail=""):
    return f"/api/projects/{project.pk}/annotations/bulk/{tail}"


def _post(client, project, items, key="k-1", **answer):
    body = {"items": [i.pk if hasattr(i, "pk") else i for i in items], "idempotency_key": key,
            **(answer or {"label": "two"})}
    return client.post(_url(project), body, format="json")


def _counts(items):
    return [(i.label_count, i.done) for i in Item.objects.filter(pk__in=[i.pk for i in items]).order_by("pk")]


def test_it_stores_a_batch_and_replays_it(project, api, bob, make_items):
    items = make_items(3)
    client = api(bob)
    first = _post(client, project, items)
    assert first.status_code == 201, first.content
    body = first.json()
    assert set(body) == {"batch", "annotator", "label", "labels", "count", "items", "annotations", "undone"}
    assert body["count"] == 3 and body["label"] == "two" and body["labels"] is None and body["annotator"] == "bob"
    assert body["items"] == sorted(i.pk for i in items) and not body["undone"]
    again = _post(client, project, items)
    assert again.status_code == 200 and again.json() == body
    listed = client.get(f"/api/projects/{project.pk}/annotations/", {"source": "bulk"}).json()["results"]
    assert {(r["item"], r["batch"], r["source"]) for r in listed} == {(i.pk, body["batch"], "bulk") for i in items}


def test_outsiders_get_404_and_viewers_403(project, api, alice, bob, charlie, dave, make_items):
    items = make_items(2)
    batch = _post(api(bob), project, items).json()["batch"]
    for client, code in ((api(charlie), 404), (api(dave), 403)):
        assert _post(client, project, make_items(1), key="x").status_code == code
        assert client.get(_url(project, "candidates/"), {"label": "two"}).status_code == code
        assert client.post(_url(project, f"{batch}/undo/")).status_code == code
    assert "annotator" in api(dave).post(_url(project, f"{batch}/undo/")).json()["detail"].lower()
    assert Annotation.objects.filter(undone=False).count() == 2


def test_one_bad_item_stores_nothing(project, api, bob, make_items):
    items = make_items(3)
    submit_annotation(project, bob, item_id=items[1].pk, label="one", idempotency_key="single")
    reply = _post(api(bob), project, items)
    assert reply.status_code == 409 and "already answered 1 of these items" in reply.json()["detail"]
    reply = _post(api(bob), project, [items[0], items[2], 987654321], key="k-2")
    assert reply.status_code == 400 and "not in this project" in reply.json()["detail"]
    assert not Annotation.objects.filter(source="bulk").exists()
    assert _counts([items[0], items[2]]) == [(0, False), (0, False)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"items": [], "label": "two", "idempotency_key": "k"}, "non-empty"),
        ({"items": [1], "label": "two"}, "idempotency_key"),
        ({"items": ["x"], "label": "two", "idempotency_key": "k"}, "valid integer"),
        ({"items": [1], "label": "two", "idempotency_key": "k" * 65}, "64"),
    ],
)
def test_malformed_bodies_are_400(project, api, bob, body, message):
    reply = api(bob).post(_url(project), body, format="json")
    assert reply.status_code == 400 and message in str(reply.json())


def test_the_item_limit_is_a_400_with_the_limit(project, api, bob, make_items, settings):
    settings.BULK_MAX_ITEMS = 2
    reply = _post(api(bob), project, make_items(3))
    assert reply.status_code == 400
    assert reply.json()["detail"] == ("At most 2 items per bulk answer; this one has 3. Send them in several batches.")


def test_undo_restores_the_items_and_only_the_author_or_an_owner_may(project, api, alice, bob, make_items):
    items = make_items(4)
    bobs = _post(api(bob), project, items[:2]).json()["batch"]
    alices = _post(api(alice), project, items[2:], key="a-1").json()["batch"]
    assert _counts(items) == [(1, True)] * 4
    refused = api(bob).post(_url(project, f"{alices}/undo/"))
    assert refused.status_code == 403 and "project owner" in refused.json()["detail"]
    undone = api(bob).post(_url(project, f"{bobs}/undo/"))
    assert undone.status_code == 200 and undone.json()["undone"] and undone.json()["count"] == 2
    assert api(alice).post(_url(project, f"{alices}/undo/")).status_code == 200
    assert _counts(items) == [(0, False)] * 4
    assert api(alice).post(_url(project, f"{'0' * 32}/undo/")).status_code == 404


def test_candidates_by_class_and_by_similarity(project, api, alice, bob, make_items):
    items = make_items(14)
    probs = np.zeros((14, 3), np.float32)
    probs[:, 2] = np.arange(14) / 14  # the last item is the surest "two"
    near = np.array([[(i + 1) % 14, (i + 2) % 14] for i in range(14)])
    publish(project, probs, [i.pool_index for i in items], near=near, sims=np.full((14, 2), 0.5))
    submit_annotation(project, alice, item_id=items[13].pk, label="two", idempotency_key="a")
    reply = api(bob).get(_url(project, "candidates/"), {"label": "two", "size": 12})
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert body["mode"] == "label" and body["version"] == 1 and body["similar_to"] is None
    assert [c["item"] for c in body["candidates"]] == [i.pk for i in items[12:0:-1]]
    first = body["candidates"][0]
    assert first["image_url"].endswith(f"/projects/{project.pk}/items/{items[12].pk}/image/")
    assert first["score"] == pytest.approx(12 / 14, abs=1e-4) and first["suggestion"]["label"] == "two"
    similar = api(bob).get(_url(project, "candidates/"), {"similar_to": items[0].pk, "size": 12}).json()
    assert similar["mode"] == "similar" and similar["similar_to"] == items[0].pk
    assert [c["item"] for c in similar["candidates"]][:3] == [items[0].pk, items[1].pk, items[2].pk]


@pytest.mark.parametrize(
    ("query", "message"),
    [({}, "not both and not neither"), ({"label": "two", "size": 100}, "from 12 to 48"),
     ({"label": "nine"}, "Unknown class"), ({"similar_to": "abc"}, "item id")],
)
def test_bad_candidate_queries_are_400(project, api, bob, query, message):
    reply = api(bob).get(_url(project, "candidates/"), query)
    assert reply.status_code == 400 and message in reply.json()["detail"]


def test_multi_label_bulk_answers_carry_the_set(alice, api, make_items):
    from annotator.projects.changes import create_project

    tags = create_project(alice, name="Tags", classes=["cat", "dog"], audit_fraction=0.0, multi_label=True)
    items = make_items(2, target=tags)
    reply = api(alice).post(_url(tags), {"items": [i.pk for i in items], "labels": ["dog", "cat"],
                                         "idempotency_key": "m"}, format="json")
    assert reply.status_code == 201, reply.content
    assert reply.json()["labels"] == ["cat", "dog"] and reply.json()["label"] is None
