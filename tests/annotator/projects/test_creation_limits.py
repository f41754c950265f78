"""Who may create projects (PROJECT_CREATORS) and how many (MAX_PROJECTS_PER_USER), on the page
and in the API, and the image quota per project (MAX_IMAGES_PER_PROJECT) in every import path."""
import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotator.access import Forbidden, Invalid
from annotator.importing.images import import_path, import_uploads
from annotator.models import Item, Project
from annotator.projects.changes import create_project
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db

NEW = {"name": "Birds", "classes": "robin\nwren", "strategy": "bald", "query_batch_size": "25",
       "audit_fraction": "0.2", "annotations_per_item": "1"}


# --- who may create projects ----------------------------------------------------------------


def test_with_staff_only_a_user_cannot_create_a_project_on_the_page(client, charlie, settings):
    settings.PROJECT_CREATORS = "staff"
    client.force_login(charlie)
    page = client.get(reverse("project-create"))
    assert page.status_code == 403
    assert "Only staff members can create projects" in page.content.decode()
    response = client.post(reverse("project-create"), NEW)
    assert response.status_code == 403
    assert not Project.objects.filter(name="Birds").exists()


def test_with_staff_only_a_user_cannot_create_a_project_in_the_api(api, charlie, settings):
    settings.PROJECT_CREATORS = "staff"
    r = api(charlie).post("/api/projects/", {"name": "Pets", "classes": ["cat", "dog"]}, format="json")
    assert r.status_code == 403
    assert "Only staff members can create projects" in r.json()["detail"]


def test_with_staff_only_staff_create_projects(api, client, charlie, settings):
    settings.PROJECT_CREATORS = "staff"
    charlie.is_staff = True
    charlie.save()
    client.force_login(charlie)
    assert client.post(reverse("project-create"), NEW).status_code == 302
    assert api(charlie).post("/api/projects/", {"name": "Pets", "classes": ["cat", "dog"]}, format="json").status_code == 201


def test_by_default_everyone_creates_projects(api, charlie):
    assert api(charlie).post("/api/projects/", {"name": "Pets", "classes": ["cat", "dog"]}, format="json").status_code == 201


def test_anonymous_callers_create_nothing(api, client):
    assert api().post("/api/projects/", {"name": "Pets", "classes": ["cat", "dog"]}, format="json").status_code == 401
    assert client.post(reverse("project-create"), NEW).status_code == 302  # to the login page
    assert not Project.objects.exists()


# --- projects per user ------------------------------------------------------------------------


def test_a_user_may_create_up_to_the_limit(api, client, charlie, settings):
    settings.MAX_PROJECTS_PER_USER = 2
    for name in ("One", "Two"):
        assert api(charlie).post("/api/projects/", {"name": name, "classes": ["a", "b"]}, format="json").status_code == 201
    r = api(charlie).post("/api/projects/", {"name": "Three", "classes": ["a", "b"]}, format="json")
    assert r.status_code == 403
    assert "You have created 2 projects" in r.json()["detail"] and "MAX_PROJECTS_PER_USER" in r.json()["detail"]
    client.force_login(charlie)
    assert client.post(reverse("project-create"), NEW).status_code == 403
    assert Project.objects.filter(created_by=charlie).count() == 2


def test_the_limit_is_per_user(api, alice, charlie, settings):
    settings.MAX_PROJECTS_PER_USER = 1
    assert api(alice).post("/api/projects/", {"name": "A", "classes": ["a", "b"]}, format="json").status_code == 201
    assert api(charlie).post("/api/projects/", {"name": "C", "classes": ["a", "b"]}, format="json").status_code == 201


def test_zero_means_unlimited_and_operators_commands_skip_the_limits(charlie, settings):
    settings.MAX_PROJECTS_PER_USER = 0
    for i in range(3):
        create_project(charlie, name=f"P{i}", classes=["a", "b"])
    settings.MAX_PROJECTS_PER_USER = 1
    settings.PROJECT_CREATORS = "staff"
    with pytest.raises(Forbidden):
        create_project(charlie, name="Refused", classes=["a", "b"])
    assert create_project(charlie, name="Demo", classes=["a", "b"], check_limits=False).pk


# --- images per project -----------------------------------------------------------------------


def _uploads(n, start=0):
    return [SimpleUploadedFile(f"{i}.png", png_bytes(i)) for i in range(start, start + n)]


def test_an_import_that_would_pass_the_quota_is_refused_before_storing(project, alice, settings):
    settings.MAX_IMAGES_PER_PROJECT = 3
    assert import_uploads(project, _uploads(2), user=alice).counts["imported"] == 2
    stored = sorted(p.name for p in (settings.MEDIA_ROOT).rglob("*") if p.is_file())
    with pytest.raises(Invalid) as refused:
        import_uploads(project, _uploads(2, start=10), user=alice)
    assert "room for 1 more" in refused.value.message and "MAX_IMAGES_PER_PROJECT" in refused.value.message
    assert Item.objects.filter(project=project).count() == 2
    assert sorted(p.name for p in (settings.MEDIA_ROOT).rglob("*") if p.is_file()) == stored
    assert import_uploads(project, _uploads(1, start=20), user=alice).counts["imported"] == 1


def test_an_archive_counts_its_images(project, alice, settings):
    settings.MAX_IMAGES_PER_PROJECT = 2
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(3):
            archive.writestr(f"{i}.png", png_bytes(i))
    with pytest.raises(Invalid):
        import_uploads(project, [SimpleUploadedFile("three.zip", buffer.getvalue())], user=alice)
    assert not Item.objects.exists()


def test_the_quota_answers_on_the_page_and_in_the_api(project, alice, api, client, settings):
    settings.MAX_IMAGES_PER_PROJECT = 1
    r = api(alice).post(f"/api/projects/{project.pk}/images/", {"file": _uploads(2)}, format="multipart")
    assert r.status_code == 400
    assert "MAX_IMAGES_PER_PROJECT" in r.json()["detail"]
    client.force_login(alice)
    page = client.post(reverse("project-import", args=[project.pk]), {"file": _uploads(2)})
    assert "MAX_IMAGES_PER_PROJECT" in page.content.decode()
    assert not Item.objects.exists()


def test_the_quota_applies_to_server_folders_and_the_command(project, alice, settings, tmp_path):
    settings.MAX_IMAGES_PER_PROJECT = 1
    for i in range(2):
        (tmp_path / f"{i}.png").write_bytes(png_bytes(i))
    with pytest.raises(Invalid):
        import_path(project, tmp_path, user=alice)
    with pytest.raises(CommandError, match="MAX_IMAGES_PER_PROJECT"):
        call_command("import_images", project.slug, str(tmp_path), "--as-user", "alice")
    assert not Item.objects.exists()


def test_zero_images_means_unlimited(project, alice, settings):
    settings.MAX_IMAGES_PER_PROJECT = 0
    assert import_uploads(project, _uploads(3), user=alice).counts["imported"] == 3
