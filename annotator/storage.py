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
import threading

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage

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


# --- the settings of where files live (annotator/settings.py takes them whole) -------------------


def storage_settings(environ):
    """The storage settings from the environment (docs/configuration.md, "Images in a bucket"):
    STORAGE_BACKEND `local` (files under MEDIA_ROOT, written atomically) or `s3` (an
    S3-compatible bucket through django-storages, so that web processes and trainers on any
    number of machines share only the bucket, PostgreSQL and Redis), the AWS_* names of
    django-storages (empty credentials leave them to boto3: an instance role, ~/.aws; they
    also read buckets imported from in place), MEDIA_DELIVERY, MEDIA_URL_EXPIRE_S, CACHE_DIR,
    and what they imply: MEDIA_STORAGE (STORAGES["default"]) and MEDIA_IMG_ORIGINS (the CSP's
    img-src for presigned URLs). ImproperlyConfigured names a wrong value."""
    from pathlib import Path

    from django.core.exceptions import ImproperlyConfigured

    def text(name, default=""):
        return (environ.get(name) or "").strip() or default

    backend = text("STORAGE_BACKEND", "local").lower()
    bucket = text("AWS_STORAGE_BUCKET_NAME")
    endpoint = text("AWS_S3_ENDPOINT_URL") or None
    delivery = text("MEDIA_DELIVERY", "presigned" if backend == "s3" else "proxy").lower()
    try:
        expire = int(text("MEDIA_URL_EXPIRE_S", "300"))
    except ValueError as exc:
        raise ImproperlyConfigured(f"MEDIA_URL_EXPIRE_S must be an integer, got {text('MEDIA_URL_EXPIRE_S')!r}.") from exc
    if backend not in {"local", "s3"}:
        raise ImproperlyConfigured(f"STORAGE_BACKEND must be local or s3, got {backend!r}.")
    if backend == "s3" and not bucket:
        raise ImproperlyConfigured("STORAGE_BACKEND=s3 needs AWS_STORAGE_BUCKET_NAME, the bucket that holds the images.")
    if delivery not in {"presigned", "proxy"}:
        raise ImproperlyConfigured(f"MEDIA_DELIVERY must be presigned or proxy, got {delivery!r}.")
    if delivery == "presigned" and backend != "s3":
        raise ImproperlyConfigured("MEDIA_DELIVERY=presigned needs STORAGE_BACKEND=s3 (local files have no signed "
                                   "URLs); use MEDIA_DELIVERY=proxy.")
    if not 10 <= expire <= 7 * 24 * 3600:
        raise ImproperlyConfigured(f"MEDIA_URL_EXPIRE_S must be between 10 and 604800 (7 days), got {expire}.")
    values = {
        "STORAGE_BACKEND": backend, "AWS_STORAGE_BUCKET_NAME": bucket, "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": text("AWS_S3_REGION_NAME") or None, "AWS_ACCESS_KEY_ID": text("AWS_ACCESS_KEY_ID") or None,
        "AWS_SECRET_ACCESS_KEY": text("AWS_SECRET_ACCESS_KEY") or None, "MEDIA_DELIVERY": delivery,
        "MEDIA_URL_EXPIRE_S": expire, "CACHE_DIR": Path(text("CACHE_DIR")).resolve() if text("CACHE_DIR") else None,
        "MEDIA_IMG_ORIGINS": bucket_origins(delivery, endpoint),
    }
    if backend == "s3":
        # never overwrite: two imports of the same image get two names, as on disk, so that
        # the loser's cleanup cannot delete the winner's object
        values["MEDIA_STORAGE"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
            "bucket_name": bucket, "endpoint_url": endpoint, "region_name": values["AWS_S3_REGION_NAME"],
            "access_key": values["AWS_ACCESS_KEY_ID"], "secret_key": values["AWS_SECRET_ACCESS_KEY"],
            "file_overwrite": False, "default_acl": None, "querystring_auth": True, "querystring_expire": expire,
            "signature_version": "s3v4"}}
    else:  # a file appears whole or not at all (a full disk leaves no torn file)
        values["MEDIA_STORAGE"] = {"BACKEND": "annotator.storage.AtomicFileSystemStorage"}
    return values


def bucket_origins(delivery, endpoint):
    """What the CSP's img-src must allow for presigned image URLs: the endpoint's origin
    (path-style, and virtual-host style below a host name), or AWS S3's hosts."""
    if delivery != "presigned":
        return []
    if not endpoint:
        return ["https://*.amazonaws.com"]
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    origins = [f"{parts.scheme}://{parts.netloc}"]
    host = parts.hostname or ""
    if host != "localhost" and not re.fullmatch(r"[\d.]+|[0-9a-fA-F:]*:[0-9a-fA-F:]*", host):  # not an IP address
        origins.append(f"{parts.scheme}://*.{parts.netloc}")
    return origins


# --- item files: the configured storage, or an object imported in place from a bucket ----------

S3_SCHEME = "s3://"
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class BucketUrlError(ValueError):
    """An `s3://bucket/prefix/` that is not one; the message says what is wrong."""


def parse_s3_url(url):
    """(bucket, prefix) of `s3://bucket/prefix/`; the prefix may be empty and keeps its
    trailing slash. BucketUrlError, with a sentence, for anything else."""
    text = (url or "").strip()
    example = "Write it as s3://bucket-name/optional/prefix/."
    if not text.lower().startswith(S3_SCHEME):
        raise BucketUrlError(f"{text!r} is not a bucket address: it must start with s3://. {example}")
    bucket, _, prefix = text[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise BucketUrlError(f"{text!r} names no bucket. {example}")
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise BucketUrlError(
            f"{bucket!r} is not a valid bucket name (3 to 63 lowercase letters, digits, dots and hyphens, "
            f"starting and ending with a letter or digit). {example}")
    if any(part in {".", ".."} for part in prefix.split("/")) or "\\" in prefix or "\x00" in prefix:
        raise BucketUrlError(f"The prefix {prefix!r} may not hold '.' or '..' segments or backslashes. {example}")
    if len(prefix) > 900:
        raise BucketUrlError("The prefix is longer than 900 characters.")
    return bucket, prefix


def s3_name(bucket, key):
    """The name an item's file field holds for an object imported in place."""
    return f"{S3_SCHEME}{bucket}/{key}"


def _s3_options():
    from django.conf import settings

    return {
        "endpoint_url": settings.AWS_S3_ENDPOINT_URL, "region_name": settings.AWS_S3_REGION_NAME,
        "access_key": settings.AWS_ACCESS_KEY_ID, "secret_key": settings.AWS_SECRET_ACCESS_KEY,
        "default_acl": None, "querystring_auth": True, "querystring_expire": settings.MEDIA_URL_EXPIRE_S,
        "signature_version": "s3v4", "file_overwrite": False,
    }


_storages = {}
_storages_lock = threading.Lock()


def _cached(key, build):
    # One instance per process: boto3's connection pools must not cross a fork (the
    # trainer's DataLoader workers), so the key holds the process id.
    key = (os.getpid(), *key)
    with _storages_lock:
        found = _storages.get(key)
        if found is None:
            found = _storages[key] = build()
        return found


def bucket_storage(bucket):
    """A django-storages S3Storage of `bucket`, with the server's credentials (settings)."""
    from storages.backends.s3 import S3Storage

    options = _s3_options()
    return _cached(("bucket", bucket, repr(sorted(options.items()))), lambda: S3Storage(bucket_name=bucket, **options))


def media_storage():
    """The configured storage of images and exports (STORAGES["default"]), one per process."""
    from django.conf import settings
    from django.core.files.storage import storages

    params = settings.STORAGES["default"]
    return _cached(("default", repr(params)), lambda: storages.create_storage(params))


def is_local(storage):
    return isinstance(storage, FileSystemStorage)


def _missing(exc):
    """True for an S3 'no such key' (ClientError 404), so it reads as FileNotFoundError."""
    response = getattr(exc, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404 or \
        response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}


class Stream:
    """An open object to read in blocks: `read(n)`, `size` (bytes), `close()`."""

    def __init__(self, handle, size):
        self.handle, self.size = handle, size

    def read(self, n=-1):
        return self.handle.read(n)

    def close(self):
        self.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_stream(storage, key):
    """`key` of `storage` opened for reading without loading it whole (an S3 object's body
    is streamed, not spooled). FileNotFoundError when it is not there."""
    if is_local(storage):
        handle = storage.open(key, "rb")
        return Stream(handle, os.fstat(handle.fileno()).st_size)
    from botocore.exceptions import ClientError

    try:
        answer = storage.bucket.Object(storage._normalize_name(key)).get()
    except ClientError as exc:
        if _missing(exc):
            raise FileNotFoundError(f"{key} is not in bucket {storage.bucket_name}") from exc
        raise
    return Stream(answer["Body"], int(answer["ContentLength"]))


class ItemStorage(Storage):
    """The storage of items' files. A name is a key of the configured storage (STORAGES
    "default": local files, or the bucket), or `s3://bucket/key` for an image imported in
    place from a bucket: read from there with the server's credentials, and never written,
    overwritten or deleted (the bucket is the owner's, not ours)."""

    def route(self, name):
        """(storage, key, in_place) for a stored name."""
        if name.startswith(S3_SCHEME):
            bucket, key = parse_s3_url(name)
            return bucket_storage(bucket), key, True
        return media_storage(), name, False

    def _open(self, name, mode="rb"):
        storage, key, in_place = self.route(name)
        if in_place and set(mode) & set("wax+"):
            raise PermissionError(f"{name} was imported in place; it is read, never written.")
        return storage.open(key, mode)

    def open_stream(self, name):
        storage, key, _ = self.route(name)
        return open_stream(storage, key)

    def read_bytes(self, name, limit=None):
        """The file's bytes (at most `limit`; FileNotFoundError when absent)."""
        with self.open_stream(name) as stream:
            return stream.read(-1 if limit is None else limit)

    def save(self, name, content, max_length=None):
        return media_storage().save(name, content, max_length=max_length)

    def generate_filename(self, filename):
        return media_storage().generate_filename(filename)

    def get_available_name(self, name, max_length=None):
        return media_storage().get_available_name(name, max_length=max_length)

    def delete(self, name):
        storage, key, in_place = self.route(name)
        if not in_place:  # an object imported in place stays where its owner put it
            storage.delete(key)

    def exists(self, name):
        storage, key, _ = self.route(name)
        return storage.exists(key)

    def size(self, name):
        storage, key, _ = self.route(name)
        return storage.size(key)

    def url(self, name, parameters=None):
        """A presigned URL (MEDIA_URL_EXPIRE_S) for a bucket object; the storage's URL else."""
        storage, key, _ = self.route(name)
        if is_local(storage):
            return storage.url(key)
        return storage.url(key, parameters=parameters)

    def path(self, name):
        storage, key, in_place = self.route(name)
        if in_place or not is_local(storage):
            raise NotImplementedError(f"{name} is not a local file.")
        return storage.path(key)

    def local(self, name):
        """True when the name is a file on this machine's disk."""
        storage, _, in_place = self.route(name)
        return not in_place and is_local(storage)

    def listdir(self, path):
        return media_storage().listdir(path)

    def get_modified_time(self, name):
        storage, key, _ = self.route(name)
        return storage.get_modified_time(key)


_item_storage = ItemStorage()


def item_storage():
    """The storage of Item.image and Item.display_image (a callable, so migrations name it)."""
    return _item_storage


def delete_prefix(storage, prefix):
    """Removes every object under `prefix` of a bucket storage (a deleted project's files)."""
    if is_local(storage):
        raise ValueError("delete_prefix is for bucket storages; local folders are removed as folders.")
    storage.bucket.objects.filter(Prefix=storage._normalize_name(prefix)).delete()
