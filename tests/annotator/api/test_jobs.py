"""/api/projects/{id}/jobs/: large uploads become import jobs (202), export jobs, progress,
the file (owners only; the permission matrix covers the other roles)."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from annotator.models import Item, Job
from annotator.projects.changes import create_project
from tests.conftest import png_bytes


@pytest.fixture
def worker(settings, monkeypatch):
    settings.JOB_HEARTBEAT_S = 3600  # see tests/annotator/jobs/conftest.py
    monkeypatch.setattr("django_tasks_db.management.commands.db_worker.close_old_connections", lambda: None)
    return lambda: call_command("jobs_worker", batch=True, verbosity=0)


def test_a_large_upload_is_imported_by_a_job(project, api, alice, settings, worker):
    settings.IMPORT_JOB_MIN_BYTES = 1
    files = [SimpleUploadedFile("a.png", png_bytes(1)), SimpleUploadedFile("b.png", png_bytes(2))]
    r = api(alice).post(f"/api/projects/{project.pk}/images/", {"file": files}, format="multipart")
    assert r.status_code == 202
    body = r.json()
    assert (body["kind"], body["status"], body["download"]) == ("import", "queued", None)
    assert r["Location"].endswith(f"/api/projects/{project.pk}/jobs/{body['id']}/")
    assert not Item.objects.exists()
    worker()
    r = api(alice).get(r["Location"])
    assert r.status_code == 200
    job = r.json()
    assert (job["status"], job["progress"], job["attempts"], job["created_by"]) == ("succeeded", 1.0, 1, "alice")
    assert (job["result"]["imported"], job["result"]["summary"]) == (2, "Imported 2 images.")
    assert Item.objects.filter(project=project).count() == 2


def test_a_small_upload_is_imported_at_once(project, api, alice, settings):
    settings.IMPORT_JOB_MIN_BYTES = 10**9
    r = api(alice).post(f"/api/projects/{project.pk}/images/", {"file": [SimpleUploadedFile("a.png", png_bytes(1))]},
                        format="multipart")
    assert r.status_code == 201 and not Job.objects.exists()


def test_an_export_job_then_its_file(project, api, alice, worker):
    client = api(alice)
    r = client.post(f"/api/projects/{project.pk}/jobs/", {"format": "jsonl"}, format="json")
    assert r.status_code == 202, r.content
    url = r["Location"]
    r = client.get(url + "download/")
    assert r.status_code == 409
    assert r.json()["detail"].endswith("can be downloaded once it has succeeded.")
    worker()
    job = client.get(url).json()
    assert job["status"] == "succeeded"
    assert job["download"] == f"{url}download/"
    r = client.get(job["download"], HTTP_ACCEPT="application/octet-stream")
    assert r.status_code == 200
    assert r["Content-Disposition"] == f'attachment; filename="{project.slug}-labels.jsonl"'
    assert int(r["Content-Length"]) == job["result"]["size"]
    assert b"".join(r.streaming_content) == b""  # no labels yet: an empty JSON Lines file
    listed = client.get(f"/api/projects/{project.pk}/jobs/").json()
    assert [j["id"] for j in listed["results"]] == [job["id"]]


@pytest.mark.parametrize("body, message", [
    ({"format": "pdf"}, "format"),
    ({"kind": "import"}, "kind"),
    ({"format": "csv", "min_confidence": 2}, "min_confidence"),
])
def test_a_bad_export_job_is_refused(project, api, alice, body, message):
    r = api(alice).post(f"/api/projects/{project.pk}/jobs/", body, format="json")
    assert r.status_code == 400 and message in r.json()
    assert not Job.objects.exists()


def test_another_projects_job_is_not_found(project, api, alice):
    other = create_project(alice, name="Other", classes=["a", "b"])
    r = api(alice).post(f"/api/projects/{other.pk}/jobs/", {"format": "csv"}, format="json")
    job_id = r.json()["id"]
    assert api(alice).get(f"/api/projects/{project.pk}/jobs/{job_id}/").status_code == 404
    assert api(alice).get(f"/api/projects/{project.pk}/jobs/{job_id}/download/").status_code == 404
