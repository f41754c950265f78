"""Who may open which page: outsiders get 404, anonymous users go to the login page,
viewers see statistics but cannot label, import or manage members."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.conftest import png_bytes

PAGES = ["project-detail", "label"]
POSTS = [
    ("project-members", {"username": "charlie", "role": "annotator"}),
    ("project-import", {}),
    ("label-next", {}),
    ("label-answer", {"item": "1", "label": "one", "idempotency_key": "k"}),
    ("label-undo", {}),
]
ALL = PAGES + [name for name, _ in POSTS]


def _visit(client, name, project):
    url = reverse(name, args=[project.pk])
    data = dict(POSTS).get(name)
    return client.get(url) if data is None else client.post(url, data)


@pytest.mark.parametrize("name", ALL)
def test_it_rejects_outsider(client, project, charlie, name):
    client.force_login(charlie)
    assert _visit(client, name, project).status_code == 404


@pytest.mark.parametrize("name", ALL)
def test_it_redirects_anonymous_to_login(client, project, name):
    response = _visit(client, name, project)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["project-list", "project-create", "password_change", "password_change_done"])
def test_it_redirects_anonymous_from_account_pages(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_404s_a_missing_project(client, alice):
    client.force_login(alice)
    assert client.get(reverse("project-detail", args=[999999])).status_code == 404


def test_viewer_cannot_open_the_labeling_page(client, project, dave):
    client.force_login(dave)
    response = client.get(reverse("label", args=[project.pk]))
    assert response.status_code == 403
    assert "Viewers cannot label" in response.content.decode()


@pytest.mark.parametrize("name", ["label-next", "label-answer", "label-undo"])
def test_viewer_cannot_use_labeling_endpoints(client, project, dave, make_items, name):
    make_items(2)
    client.force_login(dave)
    assert _visit(client, name, project).status_code == 403


def test_viewer_sees_stats_read_only(client, project, dave):
    client.force_login(dave)
    body = client.get(reverse("project-detail", args=[project.pk])).content.decode()
    assert "Per class" in body
    assert "Start labeling" not in body
    assert reverse("project-members", args=[project.pk]) not in body
    assert reverse("project-import", args=[project.pk]) not in body


@pytest.mark.parametrize("user", ["dave", "bob"])
def test_only_owners_add_members(client, project, user, charlie, request):
    client.force_login(request.getfixturevalue(user))
    response = client.post(reverse("project-members", args=[project.pk]), {"username": "charlie", "role": "owner"})
    assert response.status_code == 403
    assert project.role_of(charlie) is None


@pytest.mark.parametrize("user", ["dave", "bob"])
def test_only_owners_import(client, project, user, request):
    client.force_login(request.getfixturevalue(user))
    upload = SimpleUploadedFile("a.png", png_bytes(1), content_type="image/png")
    response = client.post(reverse("project-import", args=[project.pk]), {"file": [upload]})
    assert response.status_code == 403
    assert project.items.count() == 0
