"""The model files web processes read (guesses, held-out arrays), shared through the
bucket when the storage is one (STORAGE_BACKEND=s3), so that a web process never reads
another machine's disk.

A trainer writes a version's files under its own ARTIFACTS_ROOT as always, then `publish`
copies the ones the web reads to `artifacts/<artifact_dir>/<file>` in the bucket, before the
version's row is committed: a row never points at files that are not there yet. A web process
that needs them (`folder`) downloads them once into its cache (CACHE_DIR, else
ARTIFACTS_ROOT, under `shared/`), each file written whole and renamed, then memory-maps them
as before; they never change afterwards. With local storage every process shares one disk
and nothing is copied.

Checkpoint versions publish their checkpoint and embeddings too, and an uploaded starting
checkpoint is published when it is accepted: the model and embeddings exports (run by a web
machine's job worker) and a trainer that takes a project over on another machine read them
through `file` the same way.

NumPy-free and torch-free: pages and the API import this through `predictions`.
"""
import logging
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files import File

from annotator.storage import delete_prefix, is_local, media_storage, open_stream

log = logging.getLogger(__name__)

PREFIX = "artifacts/"
# What the web reads of a version (predictions.PROBS_FILE and the others), and of a checkpoint
# version what the exports and another machine's trainer read (bridge.CHECKPOINT_FILE and
# EMBEDDINGS_FILE): those of the list that a version folder has are published.
SHARED_FILES = ("probs.npy", "pool_index.npy", "heldout_items.npy", "heldout_labels.npy", "heldout_probs.npy",
                "learner.pt", "embeddings.npy")
UPLOADS = "uploads"  # projects/<pk>/uploads/: uploaded starting checkpoints (steering), kept by prune
# Versions whose downloaded files a web process keeps per project (older ones are removed).
KEEP_DOWNLOADED = 8


def artifact_path(relative):
    return Path(settings.ARTIFACTS_ROOT) / relative


def cache_path(relative):
    """Where this machine keeps what it can rebuild (pixel and embedding stores, downloaded
    model files): CACHE_DIR when set, else ARTIFACTS_ROOT."""
    return Path(settings.CACHE_DIR or settings.ARTIFACTS_ROOT) / relative


def is_shared():
    return not is_local(media_storage())


def publish(folder, names=SHARED_FILES):
    """Copy the files `names` of a folder (relative to ARTIFACTS_ROOT; by default a version's
    shared files) that exist to the bucket."""
    if not is_shared():
        return
    storage, base = media_storage(), artifact_path(folder)
    for name in names:
        path = base / name
        if path.is_file():
            with path.open("rb") as handle:
                key = f"{PREFIX}{folder}/{name}"
                saved = storage.save(key, File(handle, name=name))
                if saved != key:  # a folder name is unique (time + uuid): this never happens
                    raise RuntimeError(f"{key} was already in the bucket; stored as {saved}")


def unpublish(folder, names=None):
    """Remove a pruned version's shared files from the bucket (or only `names` of the folder)."""
    if is_shared():
        try:
            if names is None:
                delete_prefix(media_storage(), f"{PREFIX}{folder}/")
            for name in names or ():
                media_storage().delete(f"{PREFIX}{folder}/{name}")
        except Exception:
            log.exception("Removing the shared files of %s from the bucket failed", folder)


def file(relative):
    """The local path of one model file (`relative` to ARTIFACTS_ROOT: a checkpoint, an
    uploaded starting checkpoint): this machine's own, else its copy downloaded from the
    bucket. None when it is in neither place, or when `relative` leaves ARTIFACTS_ROOT."""
    path = PurePosixPath(relative)
    if not relative or path.is_absolute() or ".." in path.parts:
        return None
    try:
        found = folder(str(path.parent), (path.name,)) / path.name
    except (OSError, ValueError):
        return None
    except Exception:  # the bucket did not answer: as a missing file, said in the log
        log.exception("Model file %s could not be read from the bucket", relative)
        return None
    return found if found.is_file() else None


def folder(artifact_dir, names):
    """The local folder holding `names` of a version: ARTIFACTS_ROOT/<artifact_dir> with local
    storage; with a bucket, this machine's downloaded copy (fetched now where missing).
    FileNotFoundError when a file is in neither place."""
    if not is_shared():
        return artifact_path(artifact_dir)
    local = cache_path(f"shared/{artifact_dir}")
    if Path(artifact_dir).is_absolute() or ".." in Path(artifact_dir).parts:
        raise FileNotFoundError(f"{artifact_dir!r} is not a version folder")
    fetched = False
    for name in names:
        target = local / name
        if target.is_file():
            continue
        own = artifact_path(artifact_dir) / name  # this machine wrote it (the trainer)
        if own.is_file():
            return artifact_path(artifact_dir)
        _download(f"{PREFIX}{artifact_dir}/{name}", target)
        fetched = True
    if fetched:
        _forget_old(local.parent)
    return local


def _download(key, target):
    target.parent.mkdir(parents=True, exist_ok=True)
    with open_stream(media_storage(), key) as stream:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                while block := stream.read(1024 * 1024):
                    out.write(block)
            os.replace(tmp, target)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)


def _forget_old(project_folder):
    """Keep the newest KEEP_DOWNLOADED downloaded versions of a project (a mapped file that
    goes stays readable to whoever has it open)."""
    try:
        folders = sorted((p for p in project_folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    except FileNotFoundError:
        return
    for old in folders[:-KEEP_DOWNLOADED]:
        shutil.rmtree(old, ignore_errors=True)
