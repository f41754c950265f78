"""Importing images in place from a bucket: `s3://bucket/prefix/` is listed (paginated), each
new object is read and checked like an upload (IMPORT_MAX_FILE_BYTES, IMPORT_MAX_PIXELS, a
full decode by annotator.importing.pictures), and registered WITHOUT being copied: the item's
file name is `s3://bucket/key` (annotator.storage.ItemStorage reads it from there with the
server's credentials, and never writes or deletes it). A display copy, when the image needs
one (larger than DISPLAY_MAX_SIDE, TIFF, or an EXIF rotation), is written to the storage.

Running it again registers new objects only: keys already registered in the project are
skipped before they are read ("already known"), and an object whose content the project
already holds is a duplicate (also "already known"). Folder labels work as in folder imports:
an object whose immediate parent "folder" below the prefix is named like a class is imported
with that label.

Credentials come from the settings (AWS_*), never from users: an owner can only name a bucket
the server can already read. `import_bucket` is a plain function (the command, the API and the
project page call it; a background job can too) with a `progress(done, total)` callback.
"""
import hashlib
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile

from annotator.access import Invalid
from annotator.db import chunks
from annotator.importing.archives import JUNK_NAMES, Entry
from annotator.importing.images import (
    BATCH_BYTES,
    BATCH_FILES,
    _duplicate,
    _insert_batch,
    _Pending,
    _Run,
    _server_error,
)
from annotator.importing.pictures import decode_image
from annotator.importing.report import DUPLICATE, IMPORTED, REJECTED, FileOutcome, ImportReport, Rejected, megabytes
from annotator.models import Item
from annotator.storage import BucketUrlError, bucket_storage, open_stream, parse_s3_url, s3_name

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # keys per listing request (S3's maximum)
READ_THREADS = 8  # objects read at once


@dataclass(frozen=True)
class BucketObject:
    key: str
    size: int


def source_of(url):
    """(bucket, prefix) of an `s3://` URL, or Invalid with a sentence saying what is wrong."""
    try:
        return parse_s3_url(url)
    except BucketUrlError as exc:
        raise Invalid(str(exc)) from None


def saved_source(project):
    """The project's saved `s3://bucket/prefix/`, or Invalid when it has none."""
    if not project.source_bucket:
        raise Invalid("Give the bucket to import from, as s3://bucket-name/optional/prefix/; this project has no "
                      "saved bucket source yet.")
    return s3_name(project.source_bucket, project.source_prefix)


def report_dict(url, report):
    """What the API and the page show of a bucket import."""
    counts = report.counts
    return {"source": url.strip(), "registered": counts[IMPORTED], "already_known": counts[DUPLICATE],
            "rejected": counts[REJECTED], "files": [outcome.as_dict() for outcome in report.outcomes]}


def list_objects(bucket, prefix):
    """Every object under the prefix, page by page (S3's ListObjectsV2 paginator). Invalid
    when the server's credentials cannot list it (no such bucket, access denied)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = bucket_storage(bucket).connection.meta.client
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": PAGE_SIZE})
    try:
        for page in pages:
            for entry in page.get("Contents", []):
                yield BucketObject(entry["Key"], int(entry["Size"]))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise Invalid(
            f"The server cannot list s3://{bucket}/{prefix} ({code or 'error'}: "
            f"{exc.response.get('Error', {}).get('Message', '')}). Check the bucket's name; the server reads "
            "buckets with its own credentials (AWS_* settings), so ask an administrator to grant them "
            "s3:ListBucket and s3:GetObject on it.") from None
    except BotoCoreError as exc:
        raise Invalid(f"The server cannot reach the bucket {bucket!r} ({exc}). Ask an administrator to check "
                      "AWS_S3_ENDPOINT_URL and the network.") from None


def _skipped(relative):
    """Folder markers and hidden files (".DS_Store", "__MACOSX/"), as a folder import skips them."""
    parts = relative.split("/")
    return not parts[-1] or any(part.startswith(".") or part in JUNK_NAMES for part in parts if part)


def _unsafe(relative):
    parts = relative.split("/")
    return any(part in {".", ".."} for part in parts) or "\\" in relative or "\x00" in relative


def import_bucket(project, url, *, user, progress=None, folder_labels=True):
    """Register the new objects under `url` (`s3://bucket/prefix/`) in the project's pool;
    an ImportReport (imported = registered; duplicates = already known; rejected, each with
    its reason). Saves the bucket and prefix on the project as its storage source."""
    bucket, prefix = source_of(url)
    objects = [o for o in list_objects(bucket, prefix) if not _skipped(o.key[len(prefix):])]
    if (project.source_bucket, project.source_prefix) != (bucket, prefix):
        project.source_bucket, project.source_prefix = bucket, prefix
        project.save(update_fields=["source_bucket", "source_prefix"])
    report = ImportReport()
    total = len(objects)
    if progress:
        progress(0, total)
    known = {}  # name -> item id
    for names in chunks([s3_name(bucket, o.key) for o in objects]):
        known.update(Item.objects.filter(project_id=project.pk, image__in=names).values_list("image", "pk"))
    new = [o for o in objects if s3_name(bucket, o.key) not in known]
    _check_room(project, len(new))
    run = _Run(project, user, folder_labels)
    for obj in objects:
        if (pk := known.get(s3_name(bucket, obj.key))) is not None:
            report.outcomes.append(FileOutcome(obj.key, DUPLICATE, f"Already registered from this key as item {pk}.", pk))
    if progress and known:
        progress(len(report.outcomes), total)
    for batch in _batches(new):
        for outcome in _import_batch(run, bucket, prefix, batch):
            report.outcomes.append(outcome)
            if progress:
                progress(len(report.outcomes), total)
    counts = report.counts
    log.info("Bucket import of s3://%s/%s into project %s: %s registered, %s already known, %s rejected",
             bucket, prefix, project.pk, counts[IMPORTED], counts[DUPLICATE], counts[REJECTED])
    return report


def _check_room(project, new):
    limit = settings.MAX_IMAGES_PER_PROJECT
    if not limit:
        return
    have = Item.objects.filter(project_id=project.pk).count()
    if have + new > limit:
        raise Invalid(
            f"The bucket holds {new:,} objects the project does not have yet, but the project already has {have:,} "
            f"images and may hold {limit:,} (MAX_IMAGES_PER_PROJECT): there is room for {max(0, limit - have):,} "
            "more. Import a narrower prefix, or ask an administrator to raise the limit.")


def _batches(objects):
    """At most BATCH_FILES objects and about BATCH_BYTES bytes (their listed sizes) at a time:
    a batch's bytes are held until its images are decoded."""
    batch, size = [], 0
    for obj in objects:
        if batch and (len(batch) >= BATCH_FILES or size + obj.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(obj)
        size += obj.size
    if batch:
        yield batch


def _import_batch(run, bucket, prefix, objects):
    """Read (READ_THREADS objects at once: each read waits mostly on the network), check and
    (for new content) prepare each object, then insert the rows together."""
    storage = bucket_storage(bucket)
    digests = {}
    results = []
    pendings = []
    firsts = {}
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        read = list(pool.map(lambda obj: _read(run, storage, obj), objects))
    for obj, (outcome, data) in zip(objects, read, strict=True):
        relative = obj.key[len(prefix):]
        folder = PurePosixPath(relative).parent.name if "/" in relative else ""
        entry = Entry(obj.key, folder, read=None, declared_size=obj.size)
        if outcome is not None:
            results.append(outcome)
            continue
        digest = hashlib.sha256(data).hexdigest()
        digests[obj.key] = digest
        results.append((entry, data, digest))
    del read
    existing = run.existing(set(digests.values()))
    try:
        for i, result in enumerate(results):
            if isinstance(result, FileOutcome):
                continue
            entry, data, digest = result
            if digest in existing:
                results[i] = _duplicate(entry.name, *existing[digest])
            elif digest in firsts:
                results[i] = ("same", entry.name, firsts[digest])
            else:
                prepared = _prepare(run, bucket, entry, data, digest)
                if isinstance(prepared, _Pending):
                    firsts[digest] = prepared
                    pendings.append(prepared)
                results[i] = prepared
        _insert_batch(run, pendings)
    except BaseException:
        for pending in pendings:
            if pending.outcome is None or pending.outcome.status != IMPORTED:
                _discard_display(pending)
        raise
    return [_resolve(result) for result in results]


def _resolve(result):
    if isinstance(result, FileOutcome):
        return result
    if isinstance(result, _Pending):
        return result.outcome
    _, name, first = result
    if first.outcome.status == IMPORTED:
        return _duplicate(name, first.item.pk, first.item.original_name)
    return FileOutcome(name, first.outcome.status, first.outcome.reason, first.outcome.item_id)


def _read(run, storage, obj):
    """(None, bytes) of an object within the limits, or (the refusal, None)."""
    relative = obj.key
    if _unsafe(relative):
        return FileOutcome(obj.key, REJECTED, "The key holds '.' or '..' segments or backslashes; rename the object."), None
    if len(s3_name(storage.bucket_name, obj.key)) > Item._meta.get_field("image").max_length:
        return FileOutcome(obj.key, REJECTED, "The key is too long to register."), None
    too_big = f"The object is larger than {megabytes(run.max_bytes)}, the limit per image. Downscale or recompress it."
    if obj.size > run.max_bytes:
        return FileOutcome(obj.key, REJECTED, too_big), None
    try:
        with open_stream(storage, obj.key) as stream:
            data = stream.read(run.max_bytes + 1)
    except FileNotFoundError:
        return FileOutcome(obj.key, REJECTED, "The object was deleted while the import ran."), None
    except Exception:
        log.exception("Reading s3://%s/%s for project %s failed", storage.bucket_name, obj.key, run.project.pk)
        return FileOutcome(obj.key, REJECTED, "The object could not be read from the bucket; the server log has "
                                              "the details."), None
    if len(data) > run.max_bytes:
        return FileOutcome(obj.key, REJECTED, too_big), None
    return None, data


def _prepare(run, bucket, entry, data, digest):
    """Decode and check the object; a _Pending whose image names the object in place, with
    a display copy written to the storage when it needs one, or the refusal."""
    try:
        picture = decode_image(data, max_pixels=run.max_pixels, display_max_side=run.display_side)
    except Rejected as exc:
        return FileOutcome(entry.name, REJECTED, exc.reason)
    except Exception:
        log.exception("Decoding %s for project %s failed", entry.name, run.project.pk)
        return _server_error(entry.name)
    label = run.label_for(entry.folder)
    item = Item(project=run.project, content_hash=digest, original_name=entry.basename[:255],
                width=picture.width, height=picture.height, label_count=1 if label else 0)
    item.priority = random.random()
    item.done = item.label_count >= run.project.annotations_per_item
    item.image.name = s3_name(bucket, entry.name)
    pending = _Pending(entry, item, label, [])
    display, extension = picture.display, picture.display_extension
    if display is None and picture.data is not data:  # rotated by its EXIF tag: browsers get it upright
        display, extension = picture.data, picture.extension
    if display is not None:
        try:
            item.display_image.save(f"{digest}-display.{extension}", ContentFile(display), save=False)
            pending.files.append(item.display_image)
        except Exception:
            log.exception("Writing the display copy of %s for project %s failed", entry.name, run.project.pk)
            return _server_error(entry.name)
    return pending


def _discard_display(pending):
    for stored in pending.files:  # only display copies: the object in the bucket is not ours
        stored.storage.delete(stored.name)
    pending.files = []
