"""The job kinds: a large import, an export file, a backup; their files in storage."""
import io
import tarfile
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.exporting import formats
from annotator.jobs import files
from annotator.jobs.backups import start_backup
from annotator.jobs.exports import start_export
from annotator.jobs.imports import start_import, wants_job
from annotator.labeling.answers import submit_annotation
from annotator.models import Annotation, Item, Job
from tests.conftest import png_bytes


def _zip(name, members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/zip")


def test_the_threshold_decides(settings):
    settings.IMPORT_JOB_MIN_BYTES = 100
    assert not wants_job([SimpleUploadedFile("a.png", b"x" * 60)])
    assert wants_job([SimpleUploadedFile("a.png", b"x" * 60), SimpleUploadedFile("b.png", b"x" * 40)])


def test_an_import_job_imports_and_removes_its_uploads(project, alice, run_worker):
    archive = _zip("batch.zip", {"zero/a.png": png_bytes(1), "b.png": png_bytes(2), "bad.png": b"not an image"})
    job = start_import(project, [archive, SimpleUploadedFile("c.png", png_bytes(3))], user=alice)
    stored = list(job.params["uploads"])
    assert list(job.params["uploads"].values()) == ["batch.zip", "c.png"]
    assert all(default_storage.exists(name) for name in stored)
    run_worker()
    job.refresh_from_db()
    assert job.status == "succeeded", job.message
    assert (job.result["imported"], job.result["duplicates"], job.result["rejected"]) == (3, 0, 1)
    assert job.result["rejected_files"][0]["name"] == "batch.zip/bad.png"
    assert sorted(Item.objects.filter(project=project).values_list("original_name", flat=True)) == [
        "a.png", "b.png", "c.png"]
    # the folder gave a pre-label, by the job's user
    assert Annotation.objects.get(item__original_name="a.png").annotator == alice
    assert not any(default_storage.exists(name) for name in stored)


def test_a_retried_import_finds_the_first_attempts_images(project, alice, run_worker, monkeypatch):
    from annotator.importing import images

    real = images._import_batch
    calls = {"n": 0}

    def fail_after_first_batch(run, batch):
        calls["n"] += 1
        yield from real(run, batch)
        if calls["n"] == 1:
            raise OSError("the storage went away")

    monkeypatch.setattr(images, "BATCH_FILES", 2)
    monkeypatch.setattr(images, "_import_batch", fail_after_first_batch)
    job = start_import(project, [SimpleUploadedFile(f"{i}.png", png_bytes(i)) for i in range(5)], user=alice)
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert (job.result["imported"], job.result["duplicates"]) == (3, 2)
    assert Item.objects.filter(project=project).count() == 5


def test_an_export_job_writes_the_same_bytes_as_the_download(project, alice, bob, make_items, run_worker):
    items = make_items(3)
    submit_annotation(project, bob, item_id=items[0].pk, label="one", idempotency_key="k1")
    job = start_export(project, user=alice, fmt="jsonl")
    run_worker()
    job.refresh_from_db()
    assert job.status == "succeeded", job.message
    expected = b"".join(formats.build(project, "jsonl").chunks)
    with default_storage.open(job.result["file"], "rb") as handle:
        assert handle.read() == expected
    assert job.result["size"] == len(expected)
    assert job.result["filename"] == f"{project.slug}-labels.jsonl"
    assert job.result["file"] == f"jobs/{job.pk}/{project.slug}-labels.jsonl"


def test_an_export_job_checks_its_options_first(project, alice):
    from annotator.exporting.registry import ExportError

    with pytest.raises(ExportError, match="Unknown export format 'pdf'"):
        start_export(project, user=alice, fmt="pdf")
    with pytest.raises(ExportError, match="min_confidence must be a number from 0 to 1"):
        start_export(project, user=alice, fmt="csv", min_confidence="2")
    assert not Job.objects.exists()


def test_an_export_without_a_model_fails_without_retrying(project, alice, run_worker):
    job = start_export(project, user=alice, fmt="model")
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("failed", 1)
    assert "model" in job.message.lower()


def test_a_rerun_export_replaces_what_an_attempt_left(project, alice):
    job = start_export(project, user=alice, fmt="csv")
    first = files.save_output(job, "x.csv", [b"old"])
    second = files.save_output(job, "x.csv", [b"new ", b"bytes"])
    assert first == second == f"jobs/{job.pk}/x.csv"
    with default_storage.open(second, "rb") as handle:
        assert handle.read() == b"new bytes"


def test_deleting_the_project_deletes_its_job_files(project, alice, run_worker, django_capture_on_commit_callbacks):
    job = start_export(project, user=alice, fmt="csv")
    run_worker()
    job.refresh_from_db()
    name = job.result["file"]
    assert default_storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        project.delete()
    assert not Job.objects.exists()
    assert not default_storage.exists(name)


@pytest.mark.django_db(transaction=True)  # SQLite's online backup waits for the test's transaction
def test_a_backup_job_writes_an_archive_without_jobs(project, alice, settings, tmp_path, run_worker, make_items):
    settings.BACKUP_DIR = tmp_path / "backups"
    make_items(2)
    job = start_backup(user=alice)
    assert job.project is None
    run_worker()
    job.refresh_from_db()
    assert job.status == "succeeded", job.message
    assert job.result["files"] == 2
    with tarfile.open(job.result["path"]) as tar:
        dump = tar.extractfile("database.json").read().decode()
    assert '"annotator.item"' in dump
    assert '"annotator.job"' not in dump and "django_tasks_database" not in dump


def test_the_backup_command_queues_a_job(db, settings, tmp_path, capsys):
    from django.core.management import call_command

    call_command("backup", "--background")
    job = Job.objects.get()
    assert (job.kind, job.project, job.status) == ("backup", None, "queued")
    assert f"Queued backup job {job.pk}" in capsys.readouterr().out
