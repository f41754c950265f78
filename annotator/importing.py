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
import io
import logging
import os
import random
import re
import stat
import tempfile
import warnings
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Callable

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError, features

from .models import Annotation, Item, Project

logger = logging.getLogger(__name__)

IMPORTED, DUPLICATE, REJECTED = "imported", "duplicate", "rejected"
STATUSES = (IMPORTED, DUPLICATE, REJECTED)

# The decoders Pillow may run on uploaded bytes, and the extension each format is stored under.
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}
# MPO (multi-picture JPEG from phones) is opened by the JPEG decoder.
DECODERS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")
# The format a rotated image is written in (browsers cannot show TIFF; PNG is lossless).
REENCODE_AS = {"JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WEBP"}
# Formats browsers cannot show: these always get a display copy.
NOT_FOR_BROWSERS = {"TIFF"}
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
ARCHIVE_SUFFIXES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"}
JUNK_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
# Entries (and archives) smaller than this are exempt from the compression-ratio check: a
# small, very compressible file is common and cannot be a bomb (the byte limits still hold).
RATIO_FLOOR_BYTES = 1024 * 1024
READ_CHUNK = 1024 * 1024
INSERT_ATTEMPTS = 5
# Files per database round (one duplicate query, one transaction); bytes held while reading.
BATCH_FILES = 250
BATCH_BYTES = 64 * 1024 * 1024
DISPLAY_QUALITY = 85
ROTATED_JPEG_QUALITY = 95


# --- the report ------------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file: `reason` is a sentence for duplicates and rejections;
    `item_id` is the new item (imported) or the existing one (duplicate)."""

    name: str
    status: str
    reason: str = ""
    item_id: int | None = None

    def as_dict(self):
        return {"name": self.name, "status": self.status, "reason": self.reason, "item": self.item_id}


@dataclass
class ImportReport:
    outcomes: list[FileOutcome] = field(default_factory=list)

    @property
    def counts(self):
        """{"imported": n, "duplicate": n, "rejected": n}"""
        counts = dict.fromkeys(STATUSES, 0)
        for outcome in self.outcomes:
            counts[outcome.status] += 1
        return counts

    @property
    def imported(self):
        return self.counts[IMPORTED]

    @property
    def duplicates(self):
        return self.counts[DUPLICATE]

    @property
    def rejected(self):
        return self.counts[REJECTED]

    def with_status(self, status):
        return [outcome for outcome in self.outcomes if outcome.status == status]

    def as_dict(self):
        counts = self.counts
        return {
            "imported": counts[IMPORTED],
            "duplicates": counts[DUPLICATE],
            "rejected": counts[REJECTED],
            "files": [outcome.as_dict() for outcome in self.outcomes],
        }

    def summary(self):
        """One sentence, e.g. "Imported 3 images; 1 duplicate skipped; 2 files rejected." """
        counts = self.counts
        parts = [f"Imported {_plural(counts[IMPORTED], 'image')}"]
        if counts[DUPLICATE]:
            parts.append(f"{_plural(counts[DUPLICATE], 'duplicate')} skipped")
        if counts[REJECTED]:
            parts.append(f"{_plural(counts[REJECTED], 'file')} rejected")
        return "; ".join(parts) + "."


def _plural(n, noun):
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _megabytes(n):
    return f"{n / (1024 * 1024):,.1f} MB"


class Rejected(Exception):
    """A file (or archive) refused, with a sentence saying why and what to do."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


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
            planned.extend(_plan_upload(upload, stack))
        return _import_all(project, planned, user=user, progress=progress, folder_labels=folder_labels)


def import_path(project, path, *, user, progress=None, folder_labels=True):
    """Import a folder on the server (walked recursively, in name order; zip files found in it
    are imported as archives), a zip file, or a single image. Pre-labels come from folders
    inside `path`, never from the name of `path` itself. `progress` as in import_uploads."""
    root = Path(path)
    with ExitStack() as stack:
        if root.is_dir():
            planned = []
            for file_path in _walk(root):
                planned.extend(_plan_file(file_path, file_path.relative_to(root).as_posix(), stack))
        else:
            planned = _plan_file(root, root.name, stack)
        return _import_all(project, planned, user=user, progress=progress, folder_labels=folder_labels)


# --- planning: what to import, archives checked as a whole ----------------------------------


@dataclass
class _Entry:
    """One file to import. `read(cap)` returns at most `cap` bytes of it."""

    name: str  # as shown in the report
    folder: str  # the immediate parent folder inside the import, "" at the top
    read: Callable[[int], bytes]
    in_archive: bool = False
    declared_size: int | None = None

    @property
    def basename(self):
        return PurePosixPath(self.name.replace("\\", "/")).name


def _is_junk(part):
    return part.startswith(".") or part in JUNK_NAMES


def _walk(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _is_junk(d))
        for filename in sorted(filenames):
            if not _is_junk(filename):
                yield Path(dirpath, filename)


def _read_capped(handle, cap):
    """Up to `cap` bytes from a file object, in chunks, whatever size it claims."""
    parts, left = [], cap
    while left > 0:
        chunk = handle.read(min(left, READ_CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read_path(path, cap):
    try:
        with open(path, "rb") as handle:
            return _read_capped(handle, cap)
    except OSError as exc:
        raise Rejected(f"The file could not be read on the server ({exc.strerror or exc}).") from exc


def _read_from_start(handle, cap):
    handle.seek(0)
    return _read_capped(handle, cap)


def _folder_of(name):
    return PurePosixPath(name.replace("\\", "/")).parent.name


def _plan_file(path, shown_name, stack):
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        return [FileOutcome(shown_name, REJECTED, f"The file could not be read on the server ({exc.strerror or exc}).")]
    if head in ZIP_MAGIC or path.suffix.lower() == ".zip":
        return _plan_archive(shown_name, str(path), stack)
    size = path.stat().st_size
    return [_Entry(shown_name, _folder_of(shown_name), partial(_read_path, path), declared_size=size)]


def _plan_upload(upload, stack):
    name = str(getattr(upload, "name", "") or "upload")
    if _is_junk(PurePosixPath(name.replace("\\", "/")).name):
        return []
    handle = _seekable(upload, stack)
    if handle is None:
        limit = settings.IMPORT_MAX_ARCHIVE_BYTES
        return [FileOutcome(name, REJECTED, f"The upload is larger than {_megabytes(limit)}, the limit for one upload.")]
    handle.seek(0)
    head = handle.read(4)
    handle.seek(0)
    if head in ZIP_MAGIC or name.lower().endswith(".zip"):
        return _plan_archive(name, handle, stack)
    return [_Entry(name, _folder_of(name), partial(_read_from_start, handle), declared_size=getattr(upload, "size", None))]


def _seekable(upload, stack):
    """The upload itself when it can seek (Django's uploads can); otherwise a spooled copy,
    or None when it is larger than any archive may be."""
    try:
        if upload.seekable():
            return upload
    except (AttributeError, ValueError, OSError):
        pass
    limit = settings.IMPORT_MAX_ARCHIVE_BYTES
    spool = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024))
    copied = 0
    while chunk := upload.read(READ_CHUNK):
        copied += len(chunk)
        if copied > limit:
            return None
        spool.write(chunk)
    return spool


def _plan_archive(shown_name, source, stack):
    """The archive's entries, or one refusal if any of its metadata is unsafe."""
    try:
        archive = stack.enter_context(zipfile.ZipFile(source))
        members = archive.infolist()
    except Exception as exc:  # hostile bytes can make the zip parser raise almost anything
        return [
            FileOutcome(
                shown_name,
                REJECTED,
                f"This is not a readable zip archive ({type(exc).__name__}: {exc}), so nothing from it was "
                "imported. Create it again with a standard zip tool.",
            )
        ]
    problem = archive_problem(members)
    if problem:
        return [FileOutcome(shown_name, REJECTED, f"The archive was refused and nothing from it was imported: {problem}")]
    budget = _Budget(settings.IMPORT_MAX_ARCHIVE_BYTES)
    entries = []
    for info in members:
        path = PurePosixPath(info.filename)
        if info.is_dir() or any(_is_junk(part) for part in path.parts):
            continue
        entries.append(
            _Entry(
                f"{shown_name}/{info.filename}",
                path.parent.name,
                partial(_read_member, archive, info, budget),
                in_archive=True,
                declared_size=info.file_size,
            )
        )
    return entries


def archive_problem(members):
    """Why a zip archive's metadata (a list of ZipInfo) is unsafe to unpack, or None."""
    limit = settings.IMPORT_MAX_ARCHIVE_MEMBERS
    if len(members) > limit:
        return f"it has {len(members):,} entries and the limit is {limit:,}. Split it into smaller archives."
    ratio = settings.IMPORT_MAX_ARCHIVE_RATIO
    unpacked = packed = 0
    for info in members:
        problem = _unsafe_entry(info, ratio)
        if problem:
            return problem
        unpacked += info.file_size
        packed += info.compress_size
    max_bytes = settings.IMPORT_MAX_ARCHIVE_BYTES
    if unpacked > max_bytes:
        return (
            f"it would unpack to {_megabytes(unpacked)} and the limit is {_megabytes(max_bytes)}. "
            "Split it into smaller archives."
        )
    if unpacked > RATIO_FLOOR_BYTES and unpacked > ratio * max(packed, 1):
        return (
            f"it expands {unpacked / max(packed, 1):,.0f} times when unpacked (the limit is {ratio}), "
            "which is how zip bombs work. Zip the images themselves, which barely compress."
        )
    return None


def _unsafe_entry(info, ratio):
    for name in {info.filename, info.orig_filename}:
        if (
            "\x00" in name
            or "\\" in name
            or name.startswith("/")
            or DRIVE_LETTER.match(name)
            or ".." in name.split("/")
        ):
            return (
                f"the entry {name!r} points outside the archive's folder (an absolute path, a drive letter, "
                "a backslash or '..'). Remove that entry and try again."
            )
    if stat.S_ISLNK(info.external_attr >> 16):
        return (
            f"the entry {info.filename!r} is a symbolic link, and archives with links are not accepted. "
            "Zip the files themselves."
        )
    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > ratio * max(info.compress_size, 1):
        return (
            f"the entry {info.filename!r} expands {info.file_size / max(info.compress_size, 1):,.0f} times "
            f"(the limit is {ratio}), which is how zip bombs work. Remove it and try again."
        )
    return None


class _Budget:
    """Bytes an archive may still produce, counted as they are really read."""

    def __init__(self, left):
        self.left = left


def _read_member(archive, info, budget, cap):
    if info.flag_bits & 0x1:
        raise Rejected("This entry is encrypted; archives protected by a password cannot be imported.")
    try:
        with archive.open(info) as handle:
            data = _read_capped(handle, min(cap, budget.left + 1))
    except Exception as exc:  # a damaged entry: bad CRC, unknown compression, broken stream...
        raise Rejected(f"This entry could not be unpacked ({type(exc).__name__}: {exc}).") from exc
    budget.left -= len(data)
    if budget.left < 0:
        raise Rejected("The archive holds more data than it declares, so the rest of it was not read.")
    return data


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
        if folder_labels and user is not None:
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

    entry: _Entry
    data: bytes
    digest: str


@dataclass
class _Pending:
    """An image decoded and written to storage whose row is not committed yet."""

    entry: _Entry
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
    run = _Run(project, user, folder_labels)
    report = ImportReport()
    total = len(planned)
    if progress:
        progress(0, total)
    for batch in _batches(run, planned):
        for outcome in _import_batch(run, batch):
            if outcome.status == REJECTED:
                logger.debug("Import into project %s rejected %s: %s", project.pk, outcome.name, outcome.reason)
            report.outcomes.append(outcome)
            if progress:
                progress(len(report.outcomes), total)
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
        if isinstance(task, _Entry):
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
    too_big = f"The file is larger than {_megabytes(run.max_bytes)}, the limit per image. Downscale or recompress it."
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
    except Exception:
        logger.exception("Importing %s into project %s failed", entry.name, run.project.pk)
        return _server_error(entry.name)


def _server_error(name):
    return FileOutcome(
        name, REJECTED, "This file could not be stored because of a server error; the server log has the details."
    )


# --- decoding ----------------------------------------------------------------------------------


@dataclass
class Picture:
    """A decoded, checked image: the bytes to store (the original unless it was rotated),
    its size after orientation, and a display copy when it needs one."""

    data: bytes
    extension: str
    width: int
    height: int
    display: bytes | None = None
    display_extension: str = ""


def decode_image(data, *, max_pixels, display_max_side):
    """Check and decode image bytes; raises Rejected with the reason."""
    if not data:
        raise Rejected("The file is empty.")
    image = _open_checked(data, max_pixels)
    fmt = image.format
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    stored, extension = data, EXTENSIONS[fmt]
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        image = ImageOps.exif_transpose(image)
        stored, extension = _encode_rotated(image, fmt)
    picture = Picture(stored, extension, image.width, image.height)
    if max(image.size) > display_max_side or fmt in NOT_FOR_BROWSERS:
        picture.display, picture.display_extension = _display_copy(image, display_max_side)
    return picture


def _open_checked(data, max_pixels):
    """The fully decoded image, after checking its pixel count from the header alone."""
    with warnings.catch_warnings():
        # Pillow's own bomb guard warns between its limit and twice that: refuse those too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=DECODERS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise Rejected(f"The image has more pixels than the decoder allows ({exc}). Downscale it first.") from exc
        except UnidentifiedImageError as exc:
            raise Rejected("This file is not an image that can be read (PNG, JPEG, GIF, WebP, BMP or TIFF).") from exc
        except Exception as exc:
            raise Rejected(f"This file could not be read as an image ({type(exc).__name__}: {exc}).") from exc
        width, height = image.size
        if width < 1 or height < 1:
            raise Rejected("The image has no pixels.")
        if width * height > max_pixels:
            raise Rejected(
                f"The image is {width:,} x {height:,} = {width * height:,} pixels and the limit is "
                f"{max_pixels:,} pixels. Downscale it before importing."
            )
        try:
            image.verify()
            image = Image.open(io.BytesIO(data), formats=DECODERS)
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise Rejected(f"The image has more pixels than the decoder allows ({exc}). Downscale it first.") from exc
        except Exception as exc:  # truncated or corrupt data surfaces as many exception types
            raise Rejected(
                f"The image is damaged or truncated and could not be decoded ({type(exc).__name__}: {exc})."
            ) from exc
    return image


def _has_alpha(image):
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _encode_rotated(image, fmt):
    """The rotated image in its own format where that is a common one, else PNG."""
    target = REENCODE_AS.get(fmt, "PNG")
    options = {}
    if image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    if image.info.get("exif"):
        options["exif"] = image.info["exif"]  # the camera data, minus the orientation tag
    if target == "JPEG":
        options["quality"] = ROTATED_JPEG_QUALITY
        if image.mode not in ("L", "RGB", "CMYK"):
            image = image.convert("RGB")
    elif target == "WEBP":
        options["quality"] = ROTATED_JPEG_QUALITY
    elif image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=target, **options)
    return buffer.getvalue(), EXTENSIONS[target]


def _display_copy(image, side):
    """A copy for the labeling page: at most `side` pixels on its longest side, JPEG, or WebP
    when the image has transparency."""
    alpha = _has_alpha(image)
    image = image.convert("RGBA" if alpha else ("L" if image.mode in ("1", "L") else "RGB"))
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if alpha and features.check("webp"):
        image.save(buffer, format="WEBP", quality=DISPLAY_QUALITY)
        return buffer.getvalue(), "webp"
    if alpha:
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    image.save(buffer, format="JPEG", quality=DISPLAY_QUALITY, optimize=True)
    return buffer.getvalue(), "jpg"


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
        except Exception:
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
        except Exception:
            _reset(pending)
            logger.exception("Importing %s into project %s failed", name, run.project.pk)
        _discard(pending)
        return _server_error(name)
