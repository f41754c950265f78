"""GET /api/projects/{id}/stats/."""


def _next(client, project, **body):
    return client.post(f"/api/projects/{project.pk}/next/", body, format="json")


def _answer(client, project, **body):
    return client.post(f"/api/projects/{project.pk}/annotations/", body, format="json")


def test_it_counts_answers(project, api, alice, bob, dave, make_items):
    make_items(5)
    for user, answer, key in [(alice, "zero", "a1"), (bob, "two", "b1"), (bob, "two", "b2"), (alice, None, "a2")]:
        client = api(user)
        item = _next(client, project).json()["id"]
        body = {"label": answer} if answer else {"skip": True}
        assert _answer(client, project, item=item, idempotency_key=key, **body).status_code == 201

    r = api(dave).get(f"/api/projects/{project.pk}/stats/")
    assert r.status_code == 200
    assert r.json() == {
        "items": 5,
        "labeled": 3,
        "skipped": 1,
        "per_class": {"zero": 1, "one": 0, "two": 2},
        "per_annotator": {"alice": 1, "bob": 2},
    }


def test_it_counts_an_empty_project(project, api, bob):
    r = api(bob).get(f"/api/projects/{project.pk}/stats/")
    assert r.json() == {
        "items": 0,
        "labeled": 0,
        "skipped": 0,
        "per_class": {"zero": 0, "one": 0, "two": 0},
        "per_annotator": {},
    }


def test_it_rejects_outsider(project, api, charlie):
    assert api(charlie).get(f"/api/projects/{project.pk}/stats/").status_code == 404


def test_it_rejects_anonymous(project, api):
    assert api(None).get(f"/api/projects/{project.pk}/stats/").status_code in (401, 403)
