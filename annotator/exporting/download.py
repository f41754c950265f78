"""The streamed download of an export, shared by the page (`/projects/<pk>/export/`) and the
API (`GET /api/projects/<pk>/export/`).

The body is produced chunk by chunk (by the format's module; see annotator.exporting.registry).
Under ASGI a synchronous iterator would be read whole into memory by Django before the first
byte is sent, so there each chunk is pulled in the request's sync thread from an async iterator.
"""
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

from annotator.exporting import formats


def streaming_response(request, project):
    """The streaming download, or ExportError before any byte is produced."""
    params = request.GET
    export = formats.build(
        project,
        params.get("format", ""),
        with_predictions=formats.parse_flag(params.get("predictions"), "predictions"),
        min_confidence=params.get("min_confidence"),
        split=params.get("split"),
        seed=params.get("seed"),
    )
    chunks = export.chunks
    if isinstance(request, ASGIRequest):
        chunks = _pulled_in_sync_thread(chunks)
    response = StreamingHttpResponse(chunks, content_type=export.content_type)
    response["Content-Disposition"] = content_disposition_header(True, export.filename)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


async def _pulled_in_sync_thread(chunks):
    """An async iterator over a sync generator that reads the database: one chunk at a
    time, in the thread that serves the request's sync code."""
    step = sync_to_async(next, thread_sensitive=True)
    try:
        while (chunk := await step(chunks, None)) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=True)()
