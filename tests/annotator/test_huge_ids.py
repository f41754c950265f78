"""Ids past 64 bits (in the URL or in a parameter) are refused or not found, never a 500
(issue 13, finding 10: `release=` with a 20-digit number on the labeling page)."""
import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from annotator.access import MAX_ID

HUGE = [MAX_ID + 1, 10**20, 10**30]


def _routes(patterns=None, namespace=""):
    """(url name, the names of its int parameters) for every named route with int parameters."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _routes(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern) and entry.name:
            converters = getattr(entry.pattern, "converters", {})
            ints = [k for k, c in converters.items() if type(c).__name__ == "IntConverter"]
            if ints:
                yield f"{namespace}{entry.name}", ints


ROUTES = sorted(set((name, tuple(ints)) for name, ints in _routes()))


def test_routes_with_ids_are_found():
    assert len(ROUTES) > 20


@pytest.mark.django_db
@pytest.mark.parametrize("huge", HUGE)
def test_no_route_gives_a_server_error_for_a_huge_id(client, api, project, alice, make_items, huge):
    make_items(2)
    client.force_login(alice)
    errors = []
    for name, ints in ROUTES:
        for which in ints:
            kwargs = {k: (huge if k == which else project.pk if k == "pk" else 1) for k in ints}
            url = reverse(name, kwargs=kwargs)
            caller = api(alice) if url.startswith("/api/") else client
            for method in ("get", "post", "patch", "delete"):
                response = getattr(caller, method)(url)
                if response.status_code >= 500:
                    errors.append(f"{method.upper()} {url}: {response.status_code}")
    assert errors == []


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["release", "exclude", "item"])
@pytest.mark.parametrize("huge", HUGE)
def test_labeling_parameters_refuse_huge_ids(client, project, bob, make_items, field, huge):
    make_items(3)
    client.force_login(bob)
    for path in ("label/next/", "label/answer/", "label/undo/"):
        data = {"item": 1, "label": "zero", "idempotency_key": f"k-{path}", field: str(huge)}
        response = client.post(f"/projects/{project.pk}/{path}", data, HTTP_ACCEPT="application/json")
        assert response.status_code < 500, (path, response.status_code)
    page = client.get(f"/projects/{project.pk}/label/", {field: str(huge)})
    assert page.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("huge", HUGE)
def test_the_api_next_refuses_huge_ids(api, project, bob, make_items, huge):
    make_items(2)
    response = api(bob).post(f"/api/projects/{project.pk}/next/", {"release": [huge], "exclude": [huge]},
                             format="json")
    assert response.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("huge", HUGE)
def test_owner_corrections_of_a_huge_annotation_id_are_not_found(api, project, alice, huge):
    url = f"/api/projects/{project.pk}/annotations/{huge}/"
    assert api(alice).patch(url, {"label": "zero"}, format="json").status_code == 404
    assert api(alice).delete(url).status_code == 404
    assert api(alice).get(url).status_code == 404
    review = api(alice).post(f"/api/projects/{project.pk}/items/{huge}/review/", {"label": "zero"}, format="json")
    assert review.status_code == 404
