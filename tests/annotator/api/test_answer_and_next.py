"""POST /api/projects/{id}/answer-and-next/: an answer and the next item in one request."""
from annotator.models import Annotation, Lease
from annotator.projects.members import remove_member


def _post(client, project, **body):
    return client.post(f"/api/projects/{project.pk}/answer-and-next/", body, format="json")


def _first(client, project):
    return client.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()["id"]


def test_it_stores_the_answer_and_leases_the_next_item(project, api, bob, make_items):
    make_items(3)
    client = api(bob)
    item = _first(client, project)
    r = _post(client, project, item=item, label="two", idempotency_key="k1")
    assert r.status_code == 201
    body = r.json()
    assert body["annotation"]["item"] == item and body["annotation"]["label"] == "two"
    assert set(body["next"]) == {"id", "image_url", "width", "height", "suggestion", "audit", "lease_expires"}
    assert body["next"]["id"] != item
    assert list(Lease.objects.filter(user=bob).values_list("item_id", flat=True)) == [body["next"]["id"]]
    assert Annotation.objects.get(annotator=bob).item_id == item


def test_a_retry_returns_the_stored_answer_and_the_same_next_item(project, api, bob, make_items):
    make_items(3)
    client = api(bob)
    item = _first(client, project)
    first = _post(client, project, item=item, label="one", idempotency_key="same").json()
    again = _post(client, project, item=item, label="one", idempotency_key="same")
    assert again.status_code == 200
    assert again.json()["annotation"] == first["annotation"]
    assert again.json()["next"]["id"] == first["next"]["id"]
    assert Annotation.objects.filter(annotator=bob).count() == 1


def test_exclude_leaves_the_prefetched_item_out(project, api, bob, make_items):
    make_items(4)
    client = api(bob)
    item = _first(client, project)
    prefetched = client.post(f"/api/projects/{project.pk}/next/", {"exclude": [item]}, format="json").json()["id"]
    body = _post(client, project, item=item, label="one", idempotency_key="k", exclude=[prefetched]).json()
    assert body["next"]["id"] not in (item, prefetched)


def test_next_is_null_when_nothing_is_left(project, api, bob, make_items):
    make_items(1)
    client = api(bob)
    item = _first(client, project)
    r = _post(client, project, item=item, label="one", idempotency_key="last")
    assert r.status_code == 201 and r.json()["next"] is None


def test_a_refused_answer_leases_nothing(project, api, bob, make_items):
    make_items(3)
    client = api(bob)
    item = _first(client, project)
    r = _post(client, project, item=item, label="no such class", idempotency_key="bad")
    assert r.status_code == 400
    assert list(Lease.objects.filter(user=bob).values_list("item_id", flat=True)) == [item]
    assert not Annotation.objects.filter(annotator=bob).exists()


def test_it_rejects_outsiders_viewers_and_a_member_just_removed(project, api, bob, charlie, dave, make_items):
    make_items(3)
    item = _first(api(bob), project)
    body = {"item": item, "label": "one", "idempotency_key": "x"}
    assert _post(api(charlie), project, **body).status_code == 404
    assert _post(api(dave), project, **body).status_code == 403
    remove_member(project, bob.username)
    assert _post(api(bob), project, **body).status_code == 404
    assert not Annotation.objects.exists()


def test_the_answer_and_the_lease_commit_together(project, api, bob, make_items, monkeypatch):
    """One transaction: a failure while leasing the next item takes the answer back too (and
    the answered item's lease stays), so a retry with the same key stores it once."""
    from annotator.labeling import answers

    make_items(3)
    client = api(bob)
    client.raise_request_exception = False
    item = _first(client, project)

    def broken(*args, **kwargs):
        raise RuntimeError("leasing failed")

    monkeypatch.setattr(answers, "lease_locked", broken)
    assert _post(client, project, item=item, label="one", idempotency_key="k").status_code == 500
    assert not Annotation.objects.filter(annotator=bob).exists()
    assert list(Lease.objects.filter(user=bob).values_list("item_id", flat=True)) == [item]
    monkeypatch.undo()
    assert _post(client, project, item=item, label="one", idempotency_key="k").status_code == 201
    assert Annotation.objects.filter(annotator=bob).count() == 1


def test_it_costs_at_most_17_queries(project, api, bob, make_items):
    """The hot path's query budget with a forced sign-in (a token adds its lookup): the
    membership, then one transaction: the caller's lock, the item's, the replay check, the
    class, DELETE ... RETURNING of the lease, the insert, the count; then the next lease. A
    query added here costs every answer of every annotator."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_items(5)
    client = api(bob)
    item = _first(client, project)
    with CaptureQueriesContext(connection) as queries:
        r = _post(client, project, item=item, label="one", idempotency_key="q")
    assert r.status_code == 201 and r.json()["next"] is not None
    assert len(queries.captured_queries) <= 17, [q["sql"][:80] for q in queries.captured_queries]
