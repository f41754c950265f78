"""Backup and restore: one tar archive with the database (Django's `dumpdata` JSON) and the
files under DATA_DIR the database refers to, consistent with one another while the app runs.

Consistency: the database is read from one snapshot, and the files to copy are the ones that
snapshot refers to (read in the same snapshot), so every row's file is in the archive;
files written after the snapshot started are not needed and may be missing. The snapshot:
- PostgreSQL: one REPEATABLE READ, READ ONLY transaction for the dump and the file list;
- SQLite: the online backup API copies the database to a temporary file (a read snapshot
  that does not block writers in WAL mode); dumpdata and the file list then read the copy.
JSON rather than an engine's own dump, so an archive restores into either engine (a
SQLite deployment moving to PostgreSQL restores its backup there).

Pretrained weight files (WEIGHTS_DIR) are not project data and are left out: `manage.py
weights` adds them again. Temporary `.tmp-*.part` files are never copied.
"""
import io
import json
import os
import sqlite3
import tarfile
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.utils import load_backend
from tqdm import tqdm

from annotator.operations import files
from annotator.storage import item_storage

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE = "database.json"
# Excluded from the dump: rebuilt by `migrate` (content types, permissions) or worthless
# after a restore (sessions: everyone logs in again).
# Background jobs and their task rows are passing work, not data: a restored queue would rerun them.
EXCLUDE = ["contenttypes", "auth.permission", "sessions", "admin.logentry", "django_tasks_database", "annotator.job"]
SNAPSHOT_ALIAS = "backup_snapshot"


class BackupError(Exception):
    """A sentence for the operator."""


# --- the snapshot -----------------------------------------------------------------------


@contextmanager
def database_snapshot():
    """Yields the database alias to read from: a consistent snapshot for its lifetime."""
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield DEFAULT_DB_ALIAS
    elif connection.vendor == "sqlite":
        with tempfile.TemporaryDirectory(prefix="annotator-backup-") as folder:
            copy = Path(folder) / "snapshot.sqlite3"
            connection.ensure_connection()
            target = sqlite3.connect(copy)
            try:
                connection.connection.backup(target)  # one step: a single read transaction
            finally:
                target.close()
            # A connection of its own, outside settings.DATABASES, for dumpdata to read the copy.
            snapshot = load_backend(connection.settings_dict["ENGINE"]).DatabaseWrapper(
                {**connection.settings_dict, "NAME": str(copy), "OPTIONS": {}}, SNAPSHOT_ALIAS)
            connections[SNAPSHOT_ALIAS] = snapshot
            try:
                yield SNAPSHOT_ALIAS
            finally:
                snapshot.close()
                del connections[SNAPSHOT_ALIAS]
    else:
        raise BackupError(f"Backups support PostgreSQL and SQLite, not {connection.vendor}.")


def referenced_files(alias):
    """(required, optional) paths relative to DATA_DIR: the files rows of the snapshot name,
    and the embedding stores (a cache the trainer can rebuild, copied when present)."""
    from annotator.models import Item, ModelVersion, Project

    media, artifacts = "media", "artifacts"
    required = set()
    storage = item_storage()
    for image, display in Item.objects.using(alias).values_list("image", "display_image").iterator():
        # files on this disk only: objects in a bucket (the storage's, or imported in place)
        # are kept by the bucket's own means (docs/deploy.md)
        required.update(f"{media}/{name}" for name in (image, display) if name and storage.local(name))
    for folder, checkpoint in ModelVersion.objects.using(alias).values_list("artifact_dir", "checkpoint"):
        if folder:
            required.update(f"{artifacts}/{p.relative_to(files.artifacts_root()).as_posix()}"
                            for p in files.files_under(files.artifacts_root() / folder) if not files.is_temporary(p))
        if checkpoint:
            required.add(f"{artifacts}/{checkpoint}")
    optional = set()
    for pk, init in Project.objects.using(alias).values_list("pk", "init_checkpoint"):
        if init:
            required.add(f"{artifacts}/{init}")
        stores = files.projects_artifacts_root() / str(pk) / "embeddings"
        optional.update(f"{artifacts}/{p.relative_to(files.artifacts_root()).as_posix()}"
                        for p in files.files_under(stores) if not files.is_temporary(p))
    return sorted(required), sorted(optional - required)


def _source(relative):
    top, _, rest = relative.partition("/")
    return (files.media_root() if top == "media" else files.artifacts_root()) / rest


# --- backup -----------------------------------------------------------------------------


def backup(path, *, progress=True, log=print, on_progress=None):
    """Write the archive to `path` (through a temporary file renamed at the end). Returns the
    manifest. `on_progress(done, total)`, if given, is called as files go in."""
    path = Path(path)
    mode = "w:gz" if path.name.endswith((".gz", ".tgz")) else "w"
    partial = path.with_name(f".{path.name}.partial")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="annotator-backup-") as work:
        dump = Path(work) / DATABASE
        with database_snapshot() as alias:
            call_command("dumpdata", database=alias, exclude=EXCLUDE, natural_foreign=True, natural_primary=True,
                         output=str(dump), verbosity=0)
            required, optional = referenced_files(alias)
        missing = []
        copied = 0
        with tarfile.open(partial, mode) as tar:
            tar.add(dump, arcname=DATABASE)
            bar = tqdm(required + optional, desc="Files", unit="file", disable=not progress)
            for done, relative in enumerate(bar):
                if on_progress:
                    on_progress(done, len(bar))
                source = _source(relative)
                try:
                    tar.add(source, arcname=relative, recursive=False)
                    copied += 1
                except FileNotFoundError:
                    if relative in required:
                        missing.append(relative)  # deleted since the snapshot (a pruned version, say)
            manifest = {
                "format": FORMAT, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "engine": connection.vendor, "files": copied, "missing": missing,
            }
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
    os.replace(partial, path)
    for relative in missing:
        log(f"warning: {relative} was removed after the snapshot; its row is in the archive without it")
    return manifest


# --- restore ----------------------------------------------------------------------------


def _database_is_empty():
    """True when no table of this app exists or none holds a row users made."""
    from django.contrib.auth import get_user_model

    from annotator.models import Project

    tables = set(connection.introspection.table_names())
    for model in (get_user_model(), Project):
        if model._meta.db_table in tables and model.objects.exists():
            return False
    return True


def check_empty_target():
    """Raise BackupError naming what is not empty: restore never merges into live data."""
    problems = []
    if not _database_is_empty():
        problems.append(f"the database ({connection.settings_dict['NAME']}) already has users or projects")
    for root in (files.media_root(), files.artifacts_root()):
        if files.files_under(root):
            problems.append(f"{root} already holds files")
    if problems:
        raise BackupError("Refusing to restore: " + "; ".join(problems) + ". Restore into an empty DATA_DIR and "
                          "an empty database (a new DATABASE_URL name), or move the current ones away first.")


def _safe_member(name):
    """The archive path if it is a plain relative path under media/ or artifacts/, else None."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or len(path.parts) < 2 or path.parts[0] not in {"media", "artifacts"}:
        return None
    return path


def restore(path, *, progress=True, log=print):
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"No backup archive at {path}.")
    check_empty_target()
    with tarfile.open(path, "r:*") as tar, tempfile.TemporaryDirectory(prefix="annotator-restore-") as work:
        try:
            manifest = json.load(tar.extractfile(MANIFEST))
            dump = tar.getmember(DATABASE)
        except KeyError as exc:
            raise BackupError(f"{path} is not a backup of this app (no {exc.args[0]}).") from exc
        if manifest.get("format") != FORMAT:
            raise BackupError(f"{path} has backup format {manifest.get('format')}; this version reads {FORMAT}.")
        # 1. the files (a failure here leaves the database untouched)
        members = [m for m in tar.getmembers() if m.isfile() and _safe_member(m.name)]
        for member in tqdm(members, desc="Files", unit="file", disable=not progress):
            relative = _safe_member(member.name)
            target = _source(str(relative))
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        # 2. the schema, then the rows in one transaction (loaddata resets the sequences)
        dump_file = Path(work) / DATABASE
        with tar.extractfile(dump) as src, open(dump_file, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        call_command("migrate", interactive=False, verbosity=0)
        log("Loading the database…")
        call_command("loaddata", str(dump_file), verbosity=0)
    return manifest
