"""The download of a job's output file (an export), shared by the page and the API: streamed
from the storage a block at a time (under ASGI an async iterator, as pages/media.py does for
images, so the file is never read whole into memory)."""
from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

from annotator.access import Conflict, NotFound
from annotator.job_models import Job

BLOCK_BYTES = 1024 * 1024


def output_of(job):
    """(storage name, file name, content type) of a finished job's file; Conflict while it is
    not finished, NotFound when it has none (or it was removed)."""
    if job.status != Job.Status.SUCCEEDED:
        raise Conflict(f"Job {job.pk} is {job.status}; its file can be downloaded once it has succeeded.")
    result = job.result or {}
    name = result.get("file")
    if not name or not default_storage.exists(name):
        raise NotFound(f"Job {job.pk} has no file to download.")
    return name, result.get("filename") or name.rsplit("/", 1)[-1], result.get("content_type") or "application/octet-stream"


def file_response(request, job):
    name, filename, content_type = output_of(job)
    handle = default_storage.open(name, "rb")
    if isinstance(request, ASGIRequest):
        body = _async_blocks(handle)
    else:
        body = iter(lambda: handle.read(BLOCK_BYTES), b"")
    response = StreamingHttpResponse(body, content_type=content_type)
    response._resource_closers.append(handle.close)
    response["Content-Length"] = str(default_storage.size(name))
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


async def _async_blocks(handle):
    read = sync_to_async(handle.read, thread_sensitive=False)
    while block := await read(BLOCK_BYTES):
        yield block
