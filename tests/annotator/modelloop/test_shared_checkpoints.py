"""Checkpoints beyond one machine (annotator.modelloop.shared): with a bucket, a checkpoint
version's files and an uploaded starting checkpoint are published there, and a machine with
another ARTIFACTS_ROOT (the web machine that runs an export, a trainer taking a project over)
reads them from the bucket; prune keeps the uploaded checkpoints."""
import io
import os
import time
import zipfile

import numpy as np
import pytest

from annotator.exporting import formats
from annotator.exporting.registry import NoModel
from annotator.modelloop import backbone, shared
from annotator.modelloop.results import prune_artifacts, save_array, writing
from annotator.models import ModelVersion, Project
from tests.annotator.modelloop.test_steering import _fresh, _our_checkpoint, _upload_api, pool  # noqa: F401

pytestmark = pytest.mark.django_db


def _another_machine(settings, tmp_path, name):
    settings.ARTIFACTS_ROOT = tmp_path / f"{name}-artifacts"
    settings.CACHE_DIR = tmp_path / f"{name}-cache"


def _checkpoint_version(project, rng):
    """A checkpoint version's folder written as the trainer writes one (results.writing)."""
    folder = f"projects/{project.pk}/slow-test"
    weights = rng.bytes(3000)
    embeddings = rng.normal(size=(4, 5)).astype(np.float32)
    with writing(folder, "the test checkpoint") as base:
        save_array(base / "pool_index.npy", np.arange(4, dtype=np.int64))
        save_array(base / "embeddings.npy", embeddings)
        (base / "learner.pt").write_bytes(weights)
    ModelVersion.objects.create(project=project, number=1, kind=ModelVersion.Kind.SLOW, artifact_dir=folder,
                                checkpoint=f"{folder}/learner.pt", classes=["zero", "one", "two"])
    return folder, weights, embeddings


def _body(export):
    return b"".join(export.chunks)


def test_exports_read_a_checkpoint_version_from_the_bucket(settings, tmp_path, s3_storage, project, make_items):
    rng = np.random.default_rng(0)
    items = make_items(4)
    folder, weights, embeddings = _checkpoint_version(project, rng)
    assert {f"artifacts/{folder}/{n}" for n in ("learner.pt", "embeddings.npy", "pool_index.npy")} <= set(
        s3_storage.keys("artifacts/"))
    _another_machine(settings, tmp_path, "web")

    assert _body(formats.build(project, "model")) == weights
    with zipfile.ZipFile(io.BytesIO(_body(formats.build(project, "embeddings")))) as npz:
        got = {name: np.load(npz.open(name)) for name in npz.namelist()}
    assert np.array_equal(got["embeddings.npy"], embeddings)
    assert got["item_id.npy"].tolist() == [i.pk for i in sorted(items, key=lambda i: i.pool_index)]
    assert not (settings.ARTIFACTS_ROOT / folder).exists()  # read from the cache, not a trainer's disk
    assert (settings.CACHE_DIR / "shared" / folder / "learner.pt").is_file()


def test_an_export_says_so_when_the_bucket_lost_the_files(settings, tmp_path, s3_storage, project, make_items):
    make_items(4)
    folder, _, _ = _checkpoint_version(project, np.random.default_rng(1))
    shared.unpublish(folder)
    _another_machine(settings, tmp_path, "web")
    for fmt in ("model", "embeddings"):
        with pytest.raises(NoModel, match="files of model version 1 are missing on the server"):
            formats.build(project, fmt)


def test_without_a_bucket_nothing_is_copied(settings, tmp_path, project, make_items):
    make_items(4)
    folder, weights, _ = _checkpoint_version(project, np.random.default_rng(2))
    assert _body(formats.build(project, "model")) == weights
    assert not (tmp_path / "cache").exists() and shared.file(f"{folder}/learner.pt").is_relative_to(
        settings.ARTIFACTS_ROOT)


@pytest.mark.parametrize("relative", ["../escape.pt", "/etc/passwd", ""])
def test_a_path_outside_artifacts_root_is_never_read(relative):
    assert shared.file(relative) is None


def test_an_uploaded_checkpoint_is_read_on_another_machine(settings, tmp_path, s3_storage, project, api, alice,
                                                           pool):  # noqa: F811
    data = _our_checkpoint()
    assert _upload_api(api(alice), project, data, "start.pt").status_code == 200
    relative = _fresh(project).init_checkpoint
    assert f"artifacts/{relative}" in s3_storage.keys("artifacts/")
    _another_machine(settings, tmp_path, "trainer")
    fresh = _fresh(project)
    path = backbone.uploaded_file(fresh)
    assert path is not None and path.read_bytes() == data and path.is_relative_to(settings.CACHE_DIR)

    assert _upload_api(api(alice), project, _our_checkpoint(), "again.pt").status_code == 200
    assert f"artifacts/{relative}" not in s3_storage.keys("artifacts/")  # the replaced one goes
    fresh = _fresh(project)
    assert f"artifacts/{fresh.init_checkpoint}" in s3_storage.keys("artifacts/")


def test_a_lost_upload_is_said_plainly(settings, tmp_path, project):
    Project.objects.filter(pk=project.pk).update(init_checkpoint=f"projects/{project.pk}/uploads/gone.pt",
                                                 init_checkpoint_name="gone.pt")
    with pytest.raises(ValueError, match="gone.pt is gone from this server and from the bucket"):
        backbone.required_upload(_fresh(project))


def test_prune_keeps_uploaded_checkpoints_and_drops_orphans(settings, project):
    root = settings.ARTIFACTS_ROOT / f"projects/{project.pk}"
    upload = root / shared.UPLOADS / "start.pt"
    orphan = root / "fast-orphan" / "probs.npy"
    for path in (upload, orphan):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        old = time.time() - 3600
        os.utime(path.parent, (old, old))
    prune_artifacts(project, keep=2)
    assert upload.is_file() and not orphan.parent.exists()
