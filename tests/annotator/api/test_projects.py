"""GET|POST /api/projects/ and GET /api/projects/{id}/."""
import pytest

from annotator.access import Invalid
from annotator.models import LabelClass, Membership, Project, Role
from annotator.projects.changes import create_project
from annotator.projects.classes import MAX_CLASSES


def test_it_lists_the_callers_projects_with_roles(project, api, alice, bob, charlie):
    create_project(charlie, name="Charlie's cats", classes=["cat", "dog"])
    r = api(alice).get("/api/projects/")
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 1
    [listed] = body["results"]
    assert listed["id"] == project.pk
    assert listed["role"] == "owner"
    assert listed["classes"] == ["zero", "one", "two"]
    assert [p["role"] for p in api(bob).get("/api/projects/").json()["results"]] == ["annotator"]


def test_it_lists_nothing_for_an_outsider(project, api, charlie):
    r = api(charlie).get("/api/projects/")
    assert r.status_code == 200
    assert r.json()["results"] == []


def test_it_creates_a_project_owned_by_the_caller(api, bob):
    r = api(bob).post("/api/projects/", {"name": "Pets", "classes": ["cat", "dog", "bird"]}, format="json")
    assert r.status_code == 201
    body = r.json()
    project = Project.objects.get(pk=body["id"])
    assert project.created_by == bob
    assert Membership.objects.get(project=project, user=bob).role == Role.OWNER
    assert body["role"] == "owner"
    assert body["slug"] == "pets"
    assert body["classes"] == ["cat", "dog", "bird"]
    assert body["class_details"] == [
        {"name": "cat", "hotkey": "1"},
        {"name": "dog", "hotkey": "2"},
        {"name": "bird", "hotkey": "3"},
    ]


def test_it_stores_the_optional_settings(api, bob):
    data = {
        "name": "Pets",
        "classes": ["cat", "dog"],
        "strategy": "bald",
        "query_batch_size": 25,
        "audit_fraction": 0.25,
        "annotations_per_item": 3,
    }
    r = api(bob).post("/api/projects/", data, format="json")
    assert r.status_code == 201
    project = Project.objects.get(pk=r.json()["id"])
    assert (project.strategy, project.query_batch_size, project.audit_fraction, project.annotations_per_item) == (
        "bald",
        25,
        0.25,
        3,
    )
    assert r.json()["annotations_per_item"] == 3


def test_it_ignores_server_side_fields_from_the_client(api, bob, charlie):
    data = {"name": "Pets", "classes": ["cat", "dog"], "created_by": charlie.pk, "slug": "stolen", "role": "viewer"}
    r = api(bob).post("/api/projects/", data, format="json")
    assert r.status_code == 201
    project = Project.objects.get(pk=r.json()["id"])
    assert project.created_by == bob
    assert project.slug == "pets"
    assert not Membership.objects.filter(project=project, user=charlie).exists()
    assert r.json()["role"] == "owner"


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"name": "P", "classes": ["cat"]}, "classes", "at least 2"),
        ({"name": "P", "classes": ["cat", ""]}, "classes", "may not be blank"),
        ({"name": "", "classes": ["cat", "dog"]}, "name", "may not be blank"),
        ({"classes": ["cat", "dog"]}, "name", "required"),
        ({"name": "P", "classes": ["cat", "dog"], "audit_fraction": 1.5}, "audit_fraction", "less than or equal to 1"),
        ({"name": "P", "classes": ["cat", "dog"], "query_batch_size": 0}, "query_batch_size", "greater than or equal to 1"),
        ({"name": "P", "classes": ["cat", "dog"], "annotations_per_item": 21}, "annotations_per_item", "less than or equal to 20"),
        ({"name": "P", "classes": ["cat", "dog"], "strategy": "magic"}, "strategy", "not a valid choice"),
    ],
)
def test_it_rejects_invalid_settings_with_a_message(api, bob, data, field, message):
    r = api(bob).post("/api/projects/", data, format="json")
    assert r.status_code == 400
    assert message in str(r.json()[field])
    assert not Project.objects.exists()


def test_it_rejects_duplicate_class_names_with_the_service_message(api, bob):
    r = api(bob).post("/api/projects/", {"name": "P", "classes": ["cat", "cat "]}, format="json")
    assert r.status_code == 400
    assert r.json() == {"detail": "Class names must be unique; 'cat' appears twice."}
    assert not LabelClass.objects.exists()


def test_it_shows_a_project_with_the_callers_role(project, api, alice, bob, dave):
    r = api(alice).get(f"/api/projects/{project.pk}/")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {
        "id", "name", "slug", "classes", "class_details", "strategy", "query_batch_size",
        "audit_fraction", "annotations_per_item", "multi_label", "role",
    }
    assert body["name"] == "Digits"
    assert body["classes"] == ["zero", "one", "two"]
    assert body["class_details"][0] == {"name": "zero", "hotkey": "1"}
    assert body["role"] == "owner"
    assert api(bob).get(f"/api/projects/{project.pk}/").json()["role"] == "annotator"
    assert api(dave).get(f"/api/projects/{project.pk}/").json()["role"] == "viewer"


def test_it_rejects_outsider(project, api, charlie):
    r = api(charlie).get(f"/api/projects/{project.pk}/")
    assert r.status_code == 404
    # The same answer as for a project that does not exist: outsiders learn nothing.
    assert r.json() == api(charlie).get("/api/projects/999999/").json()


def test_it_rejects_anonymous(project, api):
    assert api(None).get(f"/api/projects/{project.pk}/").status_code in (401, 403)
    assert api(None).post("/api/projects/", {"name": "P", "classes": ["a", "b"]}, format="json").status_code in (401, 403)
    assert Project.objects.count() == 1


def test_it_answers_404_for_a_non_numeric_id(project, api, alice):
    assert api(alice).get("/api/projects/digits/").status_code == 404


@pytest.mark.parametrize("method, path", [("get", ""), ("post", "members/"), ("get", "stats/"), ("get", "export/")])
def test_an_id_beyond_64_bits_is_404_not_a_server_error(project, api, alice, method, path):
    # SQLite refused such a number in the membership query (OverflowError: a 500).
    r = getattr(api(alice), method)(f"/api/projects/{2**63}/{path}", {"username": "bob", "role": "viewer"})
    assert r.status_code == 404
    assert r.json() == {"detail": "No such project."}


@pytest.mark.parametrize(
    "path", ["/api/projects/digits/", "/api/projects/-1/members/", "/api/projects/1/nothing/", "/api/x/"]
)
def test_an_unknown_api_path_is_a_json_404(project, api, alice, path):
    for method in ("get", "post", "delete"):
        r = getattr(api(alice), method)(path)
        assert r.status_code == 404
        assert r["Content-Type"] == "application/json"
        assert "/api/docs/" in r.json()["detail"]


def test_a_path_without_its_slash_is_still_redirected(project, api, alice):
    r = api(alice).get(f"/api/projects/{project.pk}/stats")
    assert r.status_code == 301
    assert r["Location"] == f"/api/projects/{project.pk}/stats/"


def test_it_refuses_more_classes_than_a_project_may_have(api, bob):
    classes = [f"class {i}" for i in range(MAX_CLASSES + 1)]
    r = api(bob).post("/api/projects/", {"name": "P", "classes": classes}, format="json")
    assert r.status_code == 400
    assert f"no more than {MAX_CLASSES}" in str(r.json()["classes"])
    with pytest.raises(Invalid, match=f"at most {MAX_CLASSES} classes"):
        create_project(bob, name="P", classes=classes)
    assert not Project.objects.exists()
