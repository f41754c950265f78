"""A job's files, through Django's storage API (the local disk by default, a bucket when the
storage is S3): uploads waiting to be imported and export files waiting to be downloaded.

Names: `jobs/uploads/<random>/<n>` for the uploads of one request (saved before the job row
exists, so a failed request leaves no row pointing at half its files), `jobs/<job id>/<file
name>` for an output. The Job row lists them (Job.stored_files); deleting the row deletes them
(annotator/signals.py)."""
import io
import logging
import secrets
from contextlib import ExitStack

from django.core.files import File
from django.core.files.storage import default_storage

log = logging.getLogger(__name__)


def save_uploads(uploads):
    """Saves Django UploadedFiles; returns {stored name: the name the client gave}, in order."""
    folder = f"jobs/uploads/{secrets.token_hex(8)}"
    saved = {}
    try:
        for number, upload in enumerate(uploads):
            saved[default_storage.save(f"{folder}/{number}", upload)] = str(upload.name or f"upload-{number}")
    except BaseException:
        delete(saved)
        raise
    return saved


class _Shown:
    """A stored file under the name its uploader gave (folders in it give pre-labels)."""

    def __init__(self, handle, name):
        self._handle = handle
        self.name = name

    def __getattr__(self, attr):
        return getattr(self._handle, attr)


def open_uploads(uploads, stack: ExitStack):
    """The stored uploads, opened for reading (closed with `stack`), under their given names."""
    return [_Shown(stack.enter_context(default_storage.open(name, "rb")), shown) for name, shown in uploads.items()]


def delete(names):
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # noqa: BLE001 - a leftover is reported, not fatal
            log.warning("Could not delete job file %s", name, exc_info=True)


class _ChunkReader(io.RawIOBase):
    """A read-only, unseekable file over an iterator of byte chunks, so that a storage can
    save an export as it is produced (never the whole file in memory)."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = bytes(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def output_folder(job):
    return f"jobs/{job.pk}"


def save_output(job, filename, chunks):
    """Writes `chunks` to the job's output file; returns its storage name. Whatever an
    earlier attempt left in the job's folder is removed first."""
    folder = output_folder(job)
    try:
        _, earlier = default_storage.listdir(folder)
    except (FileNotFoundError, NotImplementedError):
        earlier = []
    delete(f"{folder}/{name}" for name in earlier)
    reader = io.BufferedReader(_ChunkReader(chunks), buffer_size=1024 * 1024)
    return default_storage.save(f"{folder}/{filename}", File(reader, name=filename))
