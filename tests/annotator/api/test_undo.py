"""POST /api/projects/{id}/annotations/undo/: take back the caller's last answer."""
from annotator.models import Annotation, Item, Lease


def _next(client, project, **body):
    return client.post(f"/api/projects/{project.pk}/next/", body, format="json")


def _answer(client, project, **body):
    return client.post(f"/api/projects/{project.pk}/annotations/", body, format="json")


def _undo(client, project):
    return client.post(f"/api/projects/{project.pk}/annotations/undo/")


def test_it_undoes_the_last_answer_and_serves_the_item_again(project, api, bob, make_items):
    make_items(3)
    client = api(bob)
    first = _next(client, project).json()["id"]
    _answer(client, project, item=first, label="zero", idempotency_key="k1")
    second = _next(client, project).json()["id"]
    answered = _answer(client, project, item=second, label="one", idempotency_key="k2").json()

    r = _undo(client, project)
    assert r.status_code == 200
    assert r.json() == answered
    assert Annotation.objects.get(pk=answered["id"]).undone
    item = Item.objects.get(pk=second)
    assert item.label_count == 0 and not item.done
    assert _next(client, project).json()["id"] == second

    again = _answer(client, project, item=second, label="two", idempotency_key="k3")
    assert again.status_code == 201
    assert Item.objects.get(pk=second).label_count == 1


def test_it_undoes_a_skip(project, api, bob, make_items):
    make_items(2)
    client = api(bob)
    item = _next(client, project).json()["id"]
    _answer(client, project, item=item, skip=True, idempotency_key="s")
    r = _undo(client, project)
    assert r.status_code == 200
    assert r.json()["skipped"] is True
    assert _next(client, project).json()["id"] == item


def test_it_undoes_only_the_callers_own_answers(project, api, alice, bob, make_items):
    make_items(2)
    item = _next(api(alice), project).json()["id"]
    _answer(api(alice), project, item=item, label="one", idempotency_key="a")
    r = _undo(api(bob), project)
    assert r.status_code == 400
    assert r.json() == {"detail": "There is no answer of yours to undo in this project."}
    assert not Annotation.objects.filter(undone=True).exists()


def test_viewers_cannot_undo(project, api, dave):
    r = _undo(api(dave), project)
    assert r.status_code == 403


def test_it_rejects_outsider(project, api, bob, charlie, make_items):
    make_items(1)
    item = _next(api(bob), project).json()["id"]
    _answer(api(bob), project, item=item, label="one", idempotency_key="b")
    assert _undo(api(charlie), project).status_code == 404
    assert not Annotation.objects.filter(undone=True).exists()
    assert not Lease.objects.exists()


def test_it_rejects_anonymous(project, api):
    assert _undo(api(None), project).status_code in (401, 403)
