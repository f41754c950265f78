"""`manage.py cleanup` removes orphan files and keeps every referenced one; deleting a
project removes its files once the deletion commits."""
import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction

from annotator.models import ModelVersion, Project

pytestmark = pytest.mark.django_db


def _write(path, data=b"x" * 10, age_s=7200):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    old = time.time() - age_s
    os.utime(path, (old, old))
    return path


def _age(folder, age_s=7200):
    old = time.time() - age_s
    os.utime(folder, (old, old))
    return folder


@pytest.fixture
def tree(project, make_items):
    media, artifacts = Path(settings.MEDIA_ROOT), Path(settings.ARTIFACTS_ROOT)
    items = make_items(2)
    for item in items:
        _write(media / item.image.name, (media / item.image.name).read_bytes())
    base = artifacts / "projects" / str(project.pk)
    ModelVersion.objects.create(project=project, number=1, kind="fast", artifact_dir=f"projects/{project.pk}/fast-1")
    project.model_generation = 2
    project.init_checkpoint = f"projects/{project.pk}/uploads/start.pt"
    project.save()
    paths = {
        "kept_image": media / items[0].image.name,
        "kept_version": _write(base / "fast-1" / "probs.npy"),
        "kept_store": _write(base / "embeddings" / "resnet18-g2" / "vectors.npy"),
        "kept_upload": _write(base / "uploads" / "start.pt"),
        "orphan_image": _write(media / "items" / str(project.pk) / "ab" / "killed-import.png", b"y" * 1000),
        "deleted_project": _write(media / "items" / "999" / "cd" / "gone.png"),
        "deleted_artifacts": _write(artifacts / "projects" / "999" / "fast-9" / "probs.npy"),
        "old_store": _write(base / "embeddings" / "resnet18-g1" / "vectors.npy"),
        "unversioned": _write(base / "fast-killed" / "probs.npy"),
        "old_upload": _write(base / "uploads" / "replaced.pt"),
        "temporary": _write(base / "fast-1" / ".tmp-123.part"),
        "young_orphan": _write(media / "items" / str(project.pk) / "ef" / "importing-now.png", age_s=5),
    }
    for folder in ("fast-killed", "embeddings/resnet18-g1", "fast-1"):
        _age(base / folder)
    _age(media / "items" / "999")
    _age(artifacts / "projects" / "999")
    return paths


def test_dry_run_lists_orphans_with_sizes_and_removes_nothing(tree, capsys):
    call_command("cleanup", dry_run=True, no_progress=True)
    out = capsys.readouterr().out
    assert "killed-import.png" in out and "1000 B" in out and "deleted project" in out
    assert "dry run" in out
    assert all(path.exists() for path in tree.values())


def test_cleanup_removes_orphans_and_keeps_referenced_and_young_files(tree, capsys):
    call_command("cleanup", no_progress=True)
    gone = {"orphan_image", "deleted_project", "deleted_artifacts", "old_store", "unversioned", "old_upload", "temporary"}
    for name, path in tree.items():
        assert path.exists() == (name not in gone), name
    assert "Removed 7 orphan path(s)" in capsys.readouterr().out


def test_deleting_a_project_removes_its_files_on_commit(project, make_items, django_capture_on_commit_callbacks):
    make_items(1)
    folders = Project.file_folders(project.pk)
    _write(folders[1] / "fast-1" / "probs.npy")
    assert all(folder.exists() for folder in folders)
    with django_capture_on_commit_callbacks(execute=True):
        Project.objects.filter(pk=project.pk).delete()  # as the admin's bulk action does
        assert all(folder.exists() for folder in folders)  # not before the commit
    assert not any(folder.exists() for folder in folders)


def test_a_rolled_back_deletion_keeps_the_files(project, make_items):
    make_items(1)
    pk = project.pk
    folders = Project.file_folders(pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        project.delete()
        raise RuntimeError("rolled back")
    assert folders[0].exists() and Project.objects.filter(pk=pk).exists()
