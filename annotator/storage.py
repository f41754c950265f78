"""File storage for uploads and imported images: a file appears whole or not at all.

Django's FileSystemStorage writes straight to the final name, so a write that fails half-way
(a full disk, a killed process) leaves a torn file under a real name. This storage writes the
content to a temporary file in the same folder first (named `.tmp-*.part`, the convention of
mlcore.checkpoint.atomic_write, which `manage.py cleanup` and the backup already know), and
only a complete file is renamed into place; a failed write removes the temporary file. A
rename within one folder needs no new space and is atomic.

`is_disk_full(exc)` tells a full disk (or quota) apart from other OSErrors, so that callers
can say so plainly.
"""
import errno
import os
import re
import tempfile

from django.core.files import File
from django.core.files.storage import FileSystemStorage

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


# numpy's write of an array to a file that ran out of space: a short write, no errno
_SHORT_WRITE = re.compile(r"^\d+ requested and \d+ written$")


def is_disk_full(exc):
    """True for a full disk or quota anywhere in the exception's chain: an OSError with
    ENOSPC/EDQUOT (torch.save wraps it in a RuntimeError whose context it is), or numpy's
    short-write OSError."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and (exc.errno in DISK_FULL_ERRNOS or _SHORT_WRITE.match(str(exc))):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class _Written(File):
    """A complete temporary file, handed to FileSystemStorage to move into place."""

    def __init__(self, path):
        super().__init__(None, name=path)
        self.path = path

    def temporary_file_path(self):
        return self.path


class AtomicFileSystemStorage(FileSystemStorage):
    def _save(self, name, content):
        # Even an upload spooled to a temporary file is copied here first: it usually lies on
        # another file system (/tmp), where Django would copy it straight to the final name.
        directory = os.path.dirname(self.path(name))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in content.chunks():
                    out.write(chunk.encode() if isinstance(chunk, str) else chunk)
            if self.file_permissions_mode is None:
                os.chmod(tmp, 0o666 & ~_umask())  # as os.open(..., 0o666) would have made it
            return super()._save(name, _Written(tmp))
        finally:
            if os.path.lexists(tmp):  # the write failed: nothing under any name is left
                os.unlink(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
