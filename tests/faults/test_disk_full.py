"""A full disk (a 4 MiB tmpfs mounted for the test, filled up with a file): an import that does
not fit, and a model write that does not fit. The user gets one clear sentence, nothing is
half stored (no row without its file, no torn or temporary file left), what was there before
is intact, and once space is freed the same action succeeds.
Figures: test-artifacts/faults-disk-full.json, quoted in docs/reliability.md."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.labeling.leasing import lease_next
from annotator.modelloop.predictions import artifact_path
from annotator.modelloop.status import trainer_status
from annotator.modelloop.steering import reset_model
from annotator.modelloop.trainer import Trainer
from annotator.models import Item, ModelVersion, TrainerState
from annotator.projects.changes import create_project
from annotator.projects.members import add_member
from mlcore.checkpoint import load_checkpoint
from tests.annotator.modelloop.trainer_helpers import SHAPES, add_shape_items, fast_trainer_settings, label_served
from tests.conftest import png_bytes
from tests.faults.conftest import fill, free_bytes, write_figures

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
PAGE = 4096


def _uploads(seeds):
    # random noise compresses badly: about 12 KB per 64x64 PNG
    return [SimpleUploadedFile(f"img-{s}.png", png_bytes(seed=s, size=(64, 64)), "image/png") for s in seeds]


def _files_under(root):
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


def _stored_files_match_rows(project, media):
    """Every item's files exist with the bytes it was imported with, and every file under the
    items folder belongs to an item (no stray, torn or temporary file)."""
    referenced = set()
    for item in Item.objects.filter(project=project):
        path = Path(item.image.path)
        assert path.exists(), item.image.name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item.content_hash
        referenced.add(path)
        if item.display_image:
            referenced.add(Path(item.display_image.path))
    on_disk = set(_files_under(Path(media) / "items"))
    assert on_disk == referenced, sorted(str(p) for p in on_disk ^ referenced)


def test_an_import_that_does_not_fit_stores_nothing_half_and_says_so(small_fs, settings, project, alice):
    settings.MEDIA_ROOT = small_fs / "media"
    client = APIClient()
    client.force_authenticate(alice)
    url = f"/api/projects/{project.pk}/images/"
    assert client.post(url, {"file": _uploads(range(3))}, format="multipart").status_code == 201
    _stored_files_match_rows(project, settings.MEDIA_ROOT)

    filler = fill(small_fs, leave_bytes=6 * PAGE)  # room for a couple of the 12 images
    response = client.post(url, {"file": _uploads(range(100, 112))}, format="multipart")
    figures = {"import_status": response.status_code, "import_detail": response.json().get("detail"),
               "free_bytes_before": 6 * PAGE}
    assert response.status_code == 507, response.content
    detail = response.json()["detail"]
    assert detail.startswith("The server's disk is full: img-") and "Traceback" not in detail
    assert "Nothing from this import was stored" in detail  # one batch: rolled back whole
    assert Item.objects.filter(project=project).count() == 3
    _stored_files_match_rows(project, settings.MEDIA_ROOT)
    assert not [p for p in _files_under(small_fs) if p.name.endswith(".part")]

    filler.unlink()
    response = client.post(url, {"file": _uploads(range(100, 112))}, format="multipart")
    assert response.status_code == 201 and response.json()["imported"] == 12, response.content
    assert Item.objects.filter(project=project).count() == 15
    _stored_files_match_rows(project, settings.MEDIA_ROOT)
    write_figures("disk-full-import", figures)


CACHES = {"pixels", "embeddings", "uploads"}  # decoded pool images, embedding stores, uploads: not versions


def _version_folders(project):
    root = artifact_path(f"projects/{project.pk}")
    return {p.name for p in root.iterdir() if p.is_dir() and p.name not in CACHES} if root.exists() else set()


def _referenced_folders(project):
    rows = ModelVersion.objects.filter(project=project, status="ok")
    return ({Path(a).name for a in rows.exclude(artifact_dir="").values_list("artifact_dir", flat=True)}
            | {Path(c).parent.name for c in rows.exclude(checkpoint="").values_list("checkpoint", flat=True)})


def _one_line_disk_full(project):
    failed = ModelVersion.objects.filter(project=project, status="failed").order_by("-id").first()
    assert failed is not None
    assert "disk is full" in failed.error and "\n" not in failed.error and "Traceback" not in failed.error
    # what members see (the versions list, and the status once the trainer gives up): this line
    assert TrainerState.objects.get(project=project).last_error == failed.error
    assert "retrying" in trainer_status(project)["detail"]
    return failed.error


def test_a_model_write_that_does_not_fit_keeps_the_previous_model(small_fs, settings, alice, bob):
    fast_trainer_settings(settings)
    settings.ARTIFACTS_ROOT = small_fs / "artifacts"
    project = create_project(alice, name="Shapes", classes=SHAPES, audit_fraction=0.0)
    add_member(project, "bob", "annotator")
    items, truth = add_shape_items(project, 60)
    project.truth = {item.pk: kind for item, kind in zip(items, truth)}
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()  # pretraining: checkpoint v1
    trainer.run_once()  # fast path: v2, the queue
    first = ModelVersion.objects.get(project=project, kind="pretrain")
    current = TrainerState.objects.get(project=project).current_version
    folder = artifact_path(first.checkpoint).parent
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    figures = {"checkpoint_folder_bytes": sizes}

    # 1. the fast path's files do not fit: the step fails, the model it had keeps serving
    label_served(project, bob, 6)
    filler = fill(small_fs, leave_bytes=0)
    trainer.run_once()
    figures["fast_path_error"] = _one_line_disk_full(project)
    assert TrainerState.objects.get(project=project).current_version == current
    assert np.load(artifact_path(current.artifact_dir) / "pool_index.npy").shape == (60,)
    assert lease_next(project, bob) is not None  # labeling goes on in v2's queue
    assert _version_folders(project) == _referenced_folders(project)
    filler.unlink()

    # 2. a new checkpoint does not fit (a reset makes the trainer pretrain again): room for the
    #    small arrays of the folder, not for the checkpoint
    reset_model(project, by=alice)
    small = sum(-(-size // PAGE) * PAGE for name, size in sizes.items() if name != "learner.pt")
    assert sizes["learner.pt"] > 2 * PAGE, sizes
    filler = fill(small_fs, leave_bytes=small + PAGE)
    figures["free_bytes_for_checkpoint"] = free_bytes(small_fs)
    trainer.run_once()
    figures["checkpoint_error"] = _one_line_disk_full(project)
    assert "checkpoint" in figures["checkpoint_error"]
    assert _version_folders(project) == _referenced_folders(project)  # the torn folder is gone
    assert not [p for p in _files_under(small_fs) if p.name.endswith(".part")]
    assert load_checkpoint(str(artifact_path(first.checkpoint)))["meta"]["classes"] == SHAPES
    assert ModelVersion.objects.filter(project=project, status="ok").count() == 2

    # 3. space freed: the next attempt (after its backoff) pretrains and serves again
    filler.unlink()
    TrainerState.objects.filter(project=project).update(retry_at=timezone.now())
    trainer.run_once()
    trainer.run_once()
    fresh = ModelVersion.objects.filter(project=project, status="ok", generation=1)
    assert set(fresh.values_list("kind", flat=True)) == {"pretrain", "fast"}
    state = TrainerState.objects.get(project=project)
    assert state.current_version.generation == 1 and state.last_error == ""
    assert np.load(artifact_path(state.current_version.artifact_dir) / "probs.npy").shape[0] == 60
    write_figures("disk-full-model", figures)
