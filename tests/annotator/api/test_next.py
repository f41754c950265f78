"""POST /api/projects/{id}/next/: the caller's current item, a prefetch, or 204."""
from datetime import timedelta

from django.test import Client
from django.utils import timezone

from annotator.models import Lease


def _next(client, project, **body):
    return client.post(f"/api/projects/{project.pk}/next/", body, format="json")


def test_it_leases_an_item_with_its_image_and_size(project, api, bob, make_items):
    items = make_items(3)
    r = _next(api(bob), project)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"id", "image_url", "width", "height", "suggestion", "audit", "lease_expires"}
    best = min(items, key=lambda i: i.priority)
    assert body["id"] == best.pk
    assert (body["width"], body["height"]) == (32, 24)
    assert body["suggestion"] is None
    assert body["audit"] is False
    lease = Lease.objects.get(user=bob)
    assert lease.item_id == best.pk
    assert body["lease_expires"].startswith(lease.expires_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert body["image_url"] == f"http://testserver/projects/{project.pk}/items/{best.pk}/image/"

    browser = Client()
    browser.force_login(bob)
    image = browser.get(body["image_url"])
    assert image.status_code == 200
    assert b"".join(image.streaming_content).startswith(b"\x89PNG")


def test_owner_can_label_too(project, api, alice, make_items):
    make_items(1)
    assert _next(api(alice), project).status_code == 200


def test_it_returns_the_current_lease_on_repeat(project, api, bob, make_items):
    make_items(5)
    client = api(bob)
    first = _next(client, project).json()
    again = _next(client, project).json()
    assert again["id"] == first["id"]
    assert again["lease_expires"] >= first["lease_expires"]
    assert Lease.objects.filter(user=bob).count() == 1


def test_two_annotators_never_get_the_same_item(project, api, alice, bob, make_items):
    make_items(2)
    a = _next(api(alice), project).json()
    b = _next(api(bob), project).json()
    assert a["id"] != b["id"]


def test_exclude_prefetches_a_second_item_and_no_third(project, api, bob, make_items):
    make_items(5)
    client = api(bob)
    current = _next(client, project).json()
    prefetched = _next(client, project, exclude=[current["id"]])
    assert prefetched.status_code == 200
    assert prefetched.json()["id"] != current["id"]
    third = _next(client, project, exclude=[current["id"], prefetched.json()["id"]])
    assert third.status_code == 204
    assert third.content == b""
    assert Lease.objects.filter(user=bob).count() == 2
    # Without exclude, the current item again.
    assert _next(client, project).json()["id"] == current["id"]


def test_it_answers_204_when_the_pool_is_exhausted(project, api, alice, bob, make_items):
    make_items(1)
    assert _next(api(alice), project).status_code == 200
    r = _next(api(bob), project)
    assert r.status_code == 204
    assert r.content == b""
    assert not Lease.objects.filter(user=bob).exists()


def test_it_answers_204_for_an_empty_project(project, api, bob):
    assert _next(api(bob), project).status_code == 204


def test_an_expired_lease_comes_back_to_others(project, api, alice, bob, make_items):
    make_items(1)
    held = _next(api(bob), project).json()
    assert _next(api(alice), project).status_code == 204
    Lease.objects.filter(user=bob).update(expires_at=timezone.now() - timedelta(seconds=1))
    r = _next(api(alice), project)
    assert r.status_code == 200
    assert r.json()["id"] == held["id"]


def test_it_shows_the_suggestion_recorded_on_the_lease(project, api, bob, make_items):
    make_items(1)
    client = api(bob)
    _next(client, project)
    guess = {"label": "two", "confidence": 0.8, "top": [{"label": "two", "confidence": 0.8}]}
    Lease.objects.filter(user=bob).update(suggestion=guess)
    assert _next(client, project).json()["suggestion"] == guess


def test_it_flags_audit_items(project, api, bob, make_items):
    project.audit_fraction = 1.0
    project.save()
    make_items(3)
    assert _next(api(bob), project).json()["audit"] is True


def test_it_rejects_a_malformed_exclude(project, api, bob, make_items):
    make_items(1)
    r = _next(api(bob), project, exclude=["first"])
    assert r.status_code == 400
    assert "valid integer" in str(r.json()["exclude"])
    assert not Lease.objects.exists()


def test_viewers_cannot_lease(project, api, dave, make_items):
    make_items(1)
    r = _next(api(dave), project)
    assert r.status_code == 403
    assert "viewer" in r.json()["detail"]
    assert not Lease.objects.exists()


def test_it_rejects_outsider(project, api, charlie, make_items):
    make_items(1)
    assert _next(api(charlie), project).status_code == 404
    assert not Lease.objects.exists()


def test_it_rejects_anonymous(project, api, make_items):
    make_items(1)
    assert _next(api(None), project).status_code in (401, 403)
    assert not Lease.objects.exists()
