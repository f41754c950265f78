"""Planning what an upload holds: single files, folders and zip archives, with the checks
against hostile archives (unsafe paths, zip bombs, too many members) before anything is read."""
import os
import re
import stat
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

from django.conf import settings

from annotator.importing.report import READ_CHUNK, REJECTED, FileOutcome, Rejected, megabytes

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive


ARCHIVE_SUFFIXES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"}


JUNK_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}


DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


# Entries (and archives) smaller than this are exempt from the compression-ratio check: a
# small, very compressible file is common and cannot be a bomb (the byte limits still hold).
RATIO_FLOOR_BYTES = 1024 * 1024


@dataclass
class Entry:
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


def walk(root):
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


def plan_file(path, shown_name, stack):
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        return [FileOutcome(shown_name, REJECTED, f"The file could not be read on the server ({exc.strerror or exc}).")]
    if head in ZIP_MAGIC or path.suffix.lower() == ".zip":
        return _plan_archive(shown_name, str(path), stack)
    size = path.stat().st_size
    return [Entry(shown_name, _folder_of(shown_name), partial(_read_path, path), declared_size=size)]


def plan_upload(upload, stack):
    name = str(getattr(upload, "name", "") or "upload")
    if _is_junk(PurePosixPath(name.replace("\\", "/")).name):
        return []
    handle = _seekable(upload, stack)
    if handle is None:
        limit = settings.IMPORT_MAX_ARCHIVE_BYTES
        return [FileOutcome(name, REJECTED, f"The upload is larger than {megabytes(limit)}, the limit for one upload.")]
    handle.seek(0)
    head = handle.read(4)
    handle.seek(0)
    if head in ZIP_MAGIC or name.lower().endswith(".zip"):
        return _plan_archive(name, handle, stack)
    return [Entry(name, _folder_of(name), partial(_read_from_start, handle), declared_size=getattr(upload, "size", None))]


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
    except Exception as exc:  # noqa: BLE001 - hostile bytes can make the zip parser raise almost anything
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
            Entry(
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
            f"it would unpack to {megabytes(unpacked)} and the limit is {megabytes(max_bytes)}. "
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
