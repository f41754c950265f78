"""The Background jobs region of the project page (owners): large uploads go to a job, export
files are prepared and downloaded, and the region polls while a job is active."""
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from annotator.models import Item, Job
from tests.conftest import png_bytes

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_only_owners_see_the_region(client, project, alice, bob):
    client.force_login(alice)
    assert b'id="jobs"' in client.get(f"/projects/{project.pk}/").content
    client.force_login(bob)
    assert b'id="jobs"' not in client.get(f"/projects/{project.pk}/").content


def test_a_large_upload_becomes_a_job(client, project, alice, settings):
    settings.IMPORT_JOB_MIN_BYTES = 1
    client.force_login(alice)
    r = client.post(f"/projects/{project.pk}/import/", {"file": [SimpleUploadedFile("a.png", png_bytes(1))]}, **HTMX)
    assert r.status_code == 200
    job = Job.objects.get()
    assert job.kind == "import" and job.created_by == alice
    page = r.content.decode()
    assert f"being imported in the background (job #{job.pk})" in page
    assert 'hx-swap-oob="true"' in page and 'hx-trigger="every 2s"' in page  # the region, polling
    assert not Item.objects.exists()


def test_prepare_an_export_then_download_it(client, project, alice, settings, monkeypatch):
    settings.JOB_HEARTBEAT_S = 3600
    monkeypatch.setattr("django_tasks_db.management.commands.db_worker.close_old_connections", lambda: None)
    client.force_login(alice)
    r = client.post(f"/projects/{project.pk}/jobs/export/", {"format": "csv"}, **HTMX)
    assert r.status_code == 200 and 'hx-trigger="every 2s"' in r.content.decode()
    job = Job.objects.get()
    call_command("jobs_worker", batch=True, verbosity=0)
    r = client.get(f"/projects/{project.pk}/jobs/", **HTMX)
    page = r.content.decode()
    assert "every 2s" not in page  # nothing active: the region stops polling
    assert f'href="/projects/{project.pk}/jobs/{job.pk}/download/"' in page
    r = client.get(f"/projects/{project.pk}/jobs/{job.pk}/download/")
    assert r.status_code == 200
    assert b"".join(r.streaming_content).startswith(b"item_id,file,")


def test_a_bad_format_says_so(client, project, alice):
    client.force_login(alice)
    r = client.post(f"/projects/{project.pk}/jobs/export/", {"format": "pdf"})
    assert r.status_code == 400
    assert "Unknown export format" in r.content.decode()
    assert not Job.objects.exists()


def test_an_unfinished_jobs_file_is_refused_plainly(client, project, alice):
    client.force_login(alice)
    client.post(f"/projects/{project.pk}/jobs/export/", {"format": "csv"})
    job = Job.objects.get()
    r = client.get(f"/projects/{project.pk}/jobs/{job.pk}/download/")
    assert r.status_code == 409 and r["Content-Type"].startswith("text/plain")
