"""`manage.py backup` then `manage.py restore` into a fresh DATA_DIR and database gives the
same items, labels and files; restore refuses a target that is not empty."""
import json
import os
import secrets
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from annotator.labeling.answers import submit_annotation
from annotator.models import Annotation, Item, ModelVersion

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, django
from pathlib import Path
django.setup()
from django.conf import settings
from annotator.models import Annotation, Item, ModelVersion
items = {i.content_hash: [i.image.name, (Path(settings.MEDIA_ROOT) / i.image.name).read_bytes().hex()] for i in Item.objects.all()}
labels = sorted([a.item.content_hash, a.annotator.username, a.label.name if a.label else None] for a in Annotation.objects.all())
versions = [[v.number, (Path(settings.ARTIFACTS_ROOT) / v.artifact_dir / "probs.npy").read_bytes().hex()] for v in ModelVersion.objects.all()]
print(json.dumps({"items": items, "labels": labels, "versions": versions}))
"""


def _env(data_dir, database_url=None):
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="annotator.settings", DATA_DIR=str(data_dir), SECRET_KEY=secrets.token_urlsafe(50))
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def _run(args, env):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _expected(project):
    from annotator.models import Item

    items = {i.content_hash: [i.image.name, (Path(settings.MEDIA_ROOT) / i.image.name).read_bytes().hex()]
             for i in Item.objects.filter(project=project)}
    labels = sorted([a.item.content_hash, a.annotator.username, a.label.name if a.label else None]
                    for a in Annotation.objects.all())
    versions = [[v.number, (Path(settings.ARTIFACTS_ROOT) / v.artifact_dir / "probs.npy").read_bytes().hex()]
                for v in ModelVersion.objects.all()]
    return {"items": items, "labels": labels, "versions": versions}


@pytest.fixture
def labeled(project, bob, alice, make_items):
    items = make_items(4)
    submit_annotation(project, bob, item_id=items[0].pk, label="one", idempotency_key="k1")
    submit_annotation(project, alice, item_id=items[1].pk, label="two", idempotency_key="k2")
    submit_annotation(project, bob, item_id=items[2].pk, skip=True, idempotency_key="k3")
    folder = f"projects/{project.pk}/fast-1"
    (Path(settings.ARTIFACTS_ROOT) / folder).mkdir(parents=True)
    (Path(settings.ARTIFACTS_ROOT) / folder / "probs.npy").write_bytes(b"probabilities")
    (Path(settings.ARTIFACTS_ROOT) / folder / ".tmp-abc.part").write_bytes(b"half written")
    ModelVersion.objects.create(project=project, number=1, kind="fast", artifact_dir=folder)
    return project


def _backup(tmp_path):
    archive = tmp_path / "backup.tar"
    call_command("backup", str(archive), no_progress=True)
    return archive


@pytest.fixture
def fresh_database_url():
    """None on SQLite (the restore gets a new DATA_DIR, hence a new database file); on
    PostgreSQL a new, empty database name, dropped afterwards."""
    if connection.vendor != "postgresql":
        yield None
        return
    import psycopg

    name = f"wt_restore_{uuid.uuid4().hex[:10]}"
    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_backup_then_restore_gives_the_same_items_labels_and_files(labeled, tmp_path, fresh_database_url):
    archive = _backup(tmp_path)
    names = tarfile.open(archive).getnames()
    assert "database.json" in names and "manifest.json" in names
    assert not any(name.endswith(".part") for name in names)

    env = _env(tmp_path / "restored", fresh_database_url)
    result = _run(["manage.py", "restore", str(archive), "--no-progress"], env)
    assert result.returncode == 0, result.stderr
    result = _run(["-c", PROBE], env)
    assert result.returncode == 0, result.stderr
    restored = json.loads(result.stdout)
    expected = _expected(labeled)
    assert restored == expected
    assert len(expected["items"]) == 4 and len(expected["labels"]) == 3

    # the restored database is a working one: a second restore into it is refused
    again = _run(["manage.py", "restore", str(archive), "--no-progress"], env)
    assert again.returncode != 0 and "Refusing to restore" in again.stderr


@pytest.mark.django_db(transaction=True)
def test_restore_refuses_a_database_with_users(labeled, tmp_path, settings):
    archive = _backup(tmp_path)
    settings.MEDIA_ROOT, settings.ARTIFACTS_ROOT = tmp_path / "empty-media", tmp_path / "empty-artifacts"
    with pytest.raises(CommandError, match="the database .* already has users or projects"):
        call_command("restore", str(archive), no_progress=True)


@pytest.mark.django_db(transaction=True)
def test_restore_refuses_a_data_dir_with_files(labeled, tmp_path, settings):
    archive = _backup(tmp_path)
    with pytest.raises(CommandError, match="already holds files"):
        call_command("restore", str(archive), no_progress=True)


@pytest.mark.django_db(transaction=True)
def test_backup_includes_every_referenced_file_and_skips_temporary_ones(labeled, tmp_path):
    names = set(tarfile.open(_backup(tmp_path)).getnames())
    for item in labeled.items.all():
        assert f"media/{item.image.name}" in names
    assert f"artifacts/projects/{labeled.pk}/fast-1/probs.npy" in names


def test_restore_refuses_something_that_is_not_a_backup(tmp_path, db):
    bogus = tmp_path / "bogus.tar"
    with tarfile.open(bogus, "w") as tar:
        tar.add(__file__, arcname="notes.txt")
    with pytest.raises(CommandError, match="already has users|not a backup"):
        call_command("restore", str(bogus), no_progress=True)


def test_images_in_a_bucket_are_not_files_to_back_up(labeled, db):
    from annotator.operations.backup import referenced_files
    from annotator.storage import s3_name

    in_place = Item.objects.create(project=labeled, image=s3_name("their-bucket", "a/b.png"), content_hash="d" * 64,
                                   width=2, height=2, pool_index=99)
    required, _ = referenced_files("default")
    assert f"media/{in_place.image.name}" not in required
    assert all(f"media/{item.image.name}" in required for item in labeled.items.exclude(pk=in_place.pk))
