"""Importing images into a project's pool: the one code path behind browser uploads, the
`import_images` command and `POST /api/projects/{id}/images/`.

For each file:
1. read it with a byte cap (IMPORT_MAX_FILE_BYTES), never trusting a declared size;
2. hash it (SHA-256 of the bytes as given); the same content already in the project is a
   duplicate that names the existing item;
3. decode it with Pillow, restricted to PNG, JPEG, GIF, WebP, BMP and TIFF: the pixel count is
   checked from the header before anything is decoded (IMPORT_MAX_PIXELS; Pillow's own
   decompression-bomb warning counts as a refusal too), then the file is verified and fully
   decoded, so a truncated file fails here;
4. apply the EXIF orientation: the file is re-encoded only when its orientation tag asks for a
   rotation or flip, otherwise the original bytes are stored;
5. store it under a server-chosen name (the hash and an extension from the detected format)
   with a downscaled display copy when its longest side exceeds DISPLAY_MAX_SIDE.

Files go through in batches (BATCH_FILES files, about BATCH_BYTES bytes): one query finds the
batch's duplicates, then each new image is decoded and its files written, then all the rows go
in with one transaction. If that transaction fails (a concurrent import of the same content, a
pool index taken meanwhile) each row is tried on its own, and a file whose row cannot be
written is deleted again: there is never a file without its row or a row without its file.
One transaction per file cost about 2 ms per image on SQLite; batches import the 5,000 MNIST
PNGs of the demo about five times faster.

Zip archives (recognised by their first bytes, or a .zip name) are checked as a whole before
anything from them is imported: entry paths that would land outside the archive's folder,
symbolic links, too many entries, too many bytes and too high a compression ratio refuse the
whole archive, which then leaves nothing behind. Inside an accepted archive every entry is an
ordinary file: a bad one is refused on its own. Directories and hidden files (dotfiles,
__MACOSX/) are skipped without comment.

Pre-labels: an image whose immediate parent folder (inside the imported folder or archive) is
named like one of the project's classes (exactly, else ignoring case) is imported with an
answer of that class by the importing user (Annotation.Source.IMPORT).

Concurrency: pool indexes are assigned inside the rows' transaction as max + 1, with the
project row locked (SELECT ... FOR UPDATE) where the database supports it; SQLite runs every
transaction IMMEDIATE, which serializes writers. An IntegrityError falls back to one row at a
time, retried. Call these functions outside a transaction, so that each batch is committed as
it goes (and no file outlives a rolled-back outer transaction).
"""
import hashlib
import logging
import random
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Max

from annotator.access import StorageFull
from annotator.importing.archives import ARCHIVE_SUFFIXES, ZIP_MAGIC, Entry, plan_file, plan_upload, walk
from annotator.importing.limits import DiskFull, check_room, disk_full, disk_full_message
from annotator.importing.pictures import decode_image
from annotator.importing.report import DUPLICATE, IMPORTED, REJECTED, FileOutcome, ImportReport, Rejected, megabytes
from annotator.models import Annotation, Item, Project

logger = logging.getLogger(__name__)


INSERT_ATTEMPTS = 5
# Files per database round (one duplicate query, one transaction); bytes held while reading.
BATCH_FILES = 250
BATCH_BYTES = 64 * 1024 * 1024


# --- the report ------------------------------------------------------------------------


# --- public entry points ------------------------------------------------------------------


def import_uploads(project, files, *, user, progress=None, folder_labels=True):
    """Import uploaded files (Django UploadedFile objects, or any object with `.name` and
    `.read()`), each an image or a zip archive. A name with folders ("zero/a.png") gives the
    folder for pre-labels, as the folders inside an archive do.

    `progress`, if given, is a callable `progress(done, total)` (not a tqdm object): called
    with (0, total) once everything to import is known, then once per file as each batch is
    committed (a refused archive counts as one file). To drive a tqdm bar, wrap it in such a
    function, as the `import_images` command does. Hidden files (".DS_Store") are skipped.
    """
    with ExitStack() as stack:
        planned = []
        for upload in files:
            planned.extend(plan_upload(upload, stack))
        return _import_all(project, planned, user=user, progress=progress, folder_labels=folder_labels)


def import_path(project, path, *, user, progress=None, folder_labels=True):
    """Import a folder on the server (walked recursively, in name order; zip files found in it
    are imported as archives), a zip file, or a single image. Pre-labels come from folders
    inside `path`, never from the name of `path` itself. `progress` as in import_uploads."""
    root = Path(path)
    with ExitStack() as stack:
        if root.is_dir():
            planned = []
            for file_path in walk(root):
                planned.extend(plan_file(file_path, file_path.relative_to(root).as_posix(), stack))
        else:
            planned = plan_file(root, root.name, stack)
        return _import_all(project, planned, user=user, progress=progress, folder_labels=folder_labels)


# --- planning: what to import, archives checked as a whole ----------------------------------


# --- importing, a batch at a time ------------------------------------------------------------


class _Run:
    """What stays the same for every file of one import: the project, the user, the limits
    and the class names for pre-labels."""

    def __init__(self, project, user, folder_labels):
        self.project = project
        self.user = user
        self.max_bytes = settings.IMPORT_MAX_FILE_BYTES
        self.max_pixels = settings.IMPORT_MAX_PIXELS
        self.display_side = settings.DISPLAY_MAX_SIDE
        self.classes = {}
        self.classes_folded = {}
        # A folder names one class, not a multi-label answer's set: no pre-labels there.
        if folder_labels and user is not None and not project.multi_label:
            for label in project.classes.all():
                self.classes[label.name] = label
                self.classes_folded.setdefault(label.name.casefold(), []).append(label)

    def label_for(self, folder):
        if not folder:
            return None
        exact = self.classes.get(folder)
        if exact is not None:
            return exact
        matches = self.classes_folded.get(folder.casefold(), [])
        return matches[0] if len(matches) == 1 else None

    def existing(self, digests):
        """{content hash: (item pk, original name)} for the items already holding these hashes."""
        rows = Item.objects.filter(project_id=self.project.pk, content_hash__in=list(digests))
        return {digest: (pk, name) for digest, pk, name in rows.values_list("content_hash", "pk", "original_name")}


def _duplicate(name, pk, original_name):
    shown = f" ({original_name})" if original_name else ""
    return FileOutcome(name, DUPLICATE, f"Same content as item {pk}{shown}, which is already in the project.", pk)


@dataclass
class _Loaded:
    """A file read and hashed, waiting for its batch."""

    entry: Entry
    data: bytes
    digest: str


@dataclass
class _Pending:
    """An image decoded and written to storage whose row is not committed yet."""

    entry: Entry
    item: Item
    label: object  # LabelClass or None
    files: list  # the FieldFiles written, deleted again if the row fails
    outcome: FileOutcome | None = None


@dataclass
class _SameAs:
    """A second file with the content of an earlier one in the same batch."""

    name: str
    first: _Pending


def _import_all(project, planned, *, user, progress, folder_labels):
    check_room(project, planned)
    run = _Run(project, user, folder_labels)
    report = ImportReport()
    total = len(planned)
    if progress:
        progress(0, total)
    try:
        for batch in _batches(run, planned):
            for outcome in _import_batch(run, batch):
                if outcome.status == REJECTED:
                    logger.debug("Import into project %s rejected %s: %s", project.pk, outcome.name, outcome.reason)
                report.outcomes.append(outcome)
                if progress:
                    progress(len(report.outcomes), total)
    except DiskFull as exc:
        # The batch being stored was rolled back and its files removed (_import_batch); the
        # batches before it are committed, whole.
        stored = report.counts[IMPORTED]
        logger.error("Import into project %s stopped: the disk is full (%s; %s images stored before it)",
                     project.pk, exc.name, stored)
        raise StorageFull(disk_full_message(exc.name, stored)) from None
    counts = report.counts
    logger.info(
        "Import into project %s by user %s: %s imported, %s duplicates, %s rejected",
        project.pk, getattr(user, "pk", None), counts[IMPORTED], counts[DUPLICATE], counts[REJECTED],
    )
    return report


def _batches(run, planned):
    """The planned files, read and hashed, in batches of at most BATCH_FILES files and about
    BATCH_BYTES bytes (one query finds their duplicates, one transaction stores their rows)."""
    batch, size = [], 0
    for task in planned:
        if isinstance(task, Entry):
            task = _load(run, task)
            size += len(task.data) if isinstance(task, _Loaded) else 0
        batch.append(task)
        if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _load(run, entry):
    """The file's bytes and hash, or the outcome that refuses it."""
    nested = (
        "This is an archive inside the archive; nested archives are not imported. "
        "Unpack it and import its contents."
    )
    too_big = f"The file is larger than {megabytes(run.max_bytes)}, the limit per image. Downscale or recompress it."
    try:
        if entry.in_archive and PurePosixPath(entry.name).suffix.lower() in ARCHIVE_SUFFIXES:
            raise Rejected(nested)
        if entry.declared_size is not None and entry.declared_size > run.max_bytes:
            raise Rejected(too_big)
        data = entry.read(run.max_bytes + 1)
        if len(data) > run.max_bytes:
            raise Rejected(too_big)
        if entry.in_archive and data[:4] in ZIP_MAGIC:
            raise Rejected(nested)
    except Rejected as exc:
        return FileOutcome(entry.name, REJECTED, exc.reason)
    except Exception:
        logger.exception("Reading %s for project %s failed", entry.name, run.project.pk)
        return FileOutcome(
            entry.name, REJECTED, "The file could not be read because of a server error; the server log has the details."
        )
    return _Loaded(entry, data, hashlib.sha256(data).hexdigest())


def _import_batch(run, batch):
    """The outcomes of one batch, in order: duplicates found, new images decoded and written,
    then all their rows inserted together."""
    existing = run.existing(task.digest for task in batch if isinstance(task, _Loaded))
    firsts = {}  # content hash -> the first new file with it in this batch
    results = []
    try:
        for task in batch:
            if not isinstance(task, _Loaded):
                results.append(task)
            elif task.digest in existing:
                results.append(_duplicate(task.entry.name, *existing[task.digest]))
            elif task.digest in firsts:
                results.append(_SameAs(task.entry.name, firsts[task.digest]))
            else:
                result = _prepare(run, task)
                if isinstance(result, _Pending):
                    firsts[task.digest] = result
                results.append(result)
            if isinstance(task, _Loaded):
                task.data = b""  # the bytes are written by now; free them early
        _insert_batch(run, list(firsts.values()))
    except BaseException:
        for pending in firsts.values():
            if pending.outcome is None or pending.outcome.status != IMPORTED:
                _discard(pending)
        raise
    return [_resolve(result) for result in results]


def _resolve(result):
    if isinstance(result, FileOutcome):
        return result
    if isinstance(result, _Pending):
        return result.outcome
    first = result.first.outcome
    if first.status == IMPORTED:
        return _duplicate(result.name, first.item_id, result.first.item.original_name)
    return FileOutcome(result.name, first.status, first.reason, first.item_id)


def _prepare(run, loaded):
    """Decode and check the image and write its files: a _Pending, or the refusal."""
    entry = loaded.entry
    try:
        picture = decode_image(loaded.data, max_pixels=run.max_pixels, display_max_side=run.display_side)
        return _write_files(run, entry, loaded.digest, picture)
    except Rejected as exc:
        return FileOutcome(entry.name, REJECTED, exc.reason)
    except Exception as exc:
        if disk_full(exc):
            raise DiskFull(entry.name) from exc
        logger.exception("Importing %s into project %s failed", entry.name, run.project.pk)
        return _server_error(entry.name)


def _server_error(name):
    return FileOutcome(
        name, REJECTED, "This file could not be stored because of a server error; the server log has the details."
    )


# --- decoding ----------------------------------------------------------------------------------


# --- storing: files first, then rows in a transaction; files deleted if their row fails -------------


def _write_files(run, entry, digest, picture):
    label = run.label_for(entry.folder)
    project = run.project
    item = Item(
        project=project,
        content_hash=digest,
        original_name=entry.basename[:255],
        width=picture.width,
        height=picture.height,
        priority=random.random(),
        label_count=1 if label else 0,
    )
    item.done = item.label_count >= project.annotations_per_item
    pending = _Pending(entry, item, label, [])
    try:
        item.image.save(f"{digest}.{picture.extension}", ContentFile(picture.data), save=False)
        pending.files.append(item.image)
        if picture.display is not None:
            display_name = f"{digest}-display.{picture.display_extension}"
            item.display_image.save(display_name, ContentFile(picture.display), save=False)
            pending.files.append(item.display_image)
    except BaseException:
        _discard(pending)
        raise
    return pending


def _discard(pending):
    for stored in pending.files:
        stored.storage.delete(stored.name)
    pending.files = []


def _lock_project(project):
    if connection.features.has_select_for_update:
        list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk", flat=True))


def _insert_rows(run, pendings):
    """Insert the items (and pre-label answers) in one transaction, with the next free pool
    indexes; the project row is locked where the database can lock rows."""
    with transaction.atomic():
        _lock_project(run.project)
        last = Item.objects.filter(project_id=run.project.pk).aggregate(last=Max("pool_index"))["last"]
        start = 0 if last is None else last + 1
        for offset, pending in enumerate(pendings):
            pending.item.pool_index = start + offset
        Item.objects.bulk_create([pending.item for pending in pendings])
        Annotation.objects.bulk_create(
            Annotation(
                item=pending.item,
                annotator=run.user,
                label=pending.label,
                source=Annotation.Source.IMPORT,
                idempotency_key=f"import:{pending.item.pk}",
            )
            for pending in pendings
            if pending.label is not None
        )
    for pending in pendings:
        pending.outcome = FileOutcome(pending.entry.name, IMPORTED, "", pending.item.pk)


def _reset(pending):
    pending.item.pk = None
    pending.item._state.adding = True


def _insert_batch(run, pendings):
    """All rows at once; if that fails (a concurrent import of the same content, a taken pool
    index), each row on its own, so one bad row cannot take the others down."""
    if not pendings:
        return
    if connection.features.can_return_rows_from_bulk_insert:
        try:
            _insert_rows(run, pendings)
            return
        except Exception as exc:
            if disk_full(exc):
                raise DiskFull(pendings[0].entry.name) from exc
            logger.info("Batch insert into project %s failed; inserting one by one", run.project.pk, exc_info=True)
            for pending in pendings:
                _reset(pending)
    for pending in pendings:
        pending.outcome = _insert_alone(run, pending)


def _insert_alone(run, pending):
    name = pending.entry.name
    for attempt in range(1, INSERT_ATTEMPTS + 1):
        try:
            _insert_rows(run, [pending])
            return pending.outcome
        except IntegrityError:
            _reset(pending)
            known = run.existing([pending.item.content_hash]).get(pending.item.content_hash)
            if known:  # a concurrent import stored the same content first
                _discard(pending)
                return _duplicate(name, *known)
            if attempt < INSERT_ATTEMPTS:
                logger.info("Pool index taken in project %s while importing %s; retrying", run.project.pk, name)
                continue
            logger.exception("Importing %s into project %s failed", name, run.project.pk)
        except Exception as exc:
            _reset(pending)
            if disk_full(exc):
                raise DiskFull(name) from exc
            logger.exception("Importing %s into project %s failed", name, run.project.pk)
        _discard(pending)
        return _server_error(name)
