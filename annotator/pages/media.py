"""Images are served only to members of the item's project, through this view.

The bytes are streamed, never read whole: under ASGI Django turns a synchronous file
iterator into a list before sending it (the whole original in memory, up to
IMPORT_MAX_FILE_BYTES per request), so an ASGI request gets an asynchronous iterator that reads
one block at a time in a worker thread. With MEDIA_ACCEL a proxy sends the file instead, after
this view has checked access: nginx's X-Accel-Redirect (to an `internal` location at
MEDIA_ACCEL_PREFIX) or Apache's X-Sendfile.

Images in a bucket (STORAGE_BACKEND=s3, or imported in place from `s3://...`) go out as
MEDIA_DELIVERY says: `presigned`, a redirect to a signed URL of the object that works for
MEDIA_URL_EXPIRE_S seconds (the member check happens here, before the URL is made), or
`proxy`, the object's body streamed through this view as it arrives from the bucket.
"""
import mimetypes
from pathlib import Path
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.views.decorators.http import require_GET
from rest_framework.exceptions import AuthenticationFailed

from annotator.access import project_for
from annotator.accounts.tokens import ApiTokenAuthentication
from annotator.models import Item
from annotator.storage import item_storage

BLOCK_BYTES = 256 * 1024


def _user(request):
    """The session user, or the user of an `Authorization: Token` header (API clients)."""
    if request.user.is_authenticated:
        return request.user
    try:
        found = ApiTokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return request.user
    return found[0] if found else request.user


@require_GET
def item_image(request, pk, item_pk):
    project = project_for(_user(request), pk)
    item = Item.objects.filter(project=project, pk=item_pk).first()
    if item is None:
        raise Http404("No such item.")
    use_original = request.GET.get("original") == "1" or not item.display_image
    field = item.image if use_original else item.display_image
    storage = item_storage()
    if not storage.local(field.name):
        return _bucket_response(request, storage, field.name)
    if settings.MEDIA_ACCEL != "off":
        response = _proxy_response(field)
    else:
        response = _file_response(request, field)
    response["Cache-Control"] = "private, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _file_response(request, field):
    try:
        handle = field.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The image file is missing on the server.") from exc
    response = FileResponse(handle)  # sets Content-Length and Content-Type from the file
    if isinstance(request, ASGIRequest):
        response.streaming_content = _blocks(handle)  # the handle is still closed with the response
    return response


def _bucket_response(request, storage, name):
    content_type = mimetypes.guess_type(name.rsplit("/", 1)[-1])[0] or "application/octet-stream"
    if settings.MEDIA_DELIVERY == "presigned":
        # The bucket answers with this type and caching whatever the object says, and the
        # redirect itself is cached for less than the URL lives.
        url = storage.url(name, parameters={
            "ResponseContentType": content_type,
            "ResponseCacheControl": f"private, max-age={settings.MEDIA_URL_EXPIRE_S}",
        })
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = f"private, max-age={settings.MEDIA_URL_EXPIRE_S // 2}"
        response["Referrer-Policy"] = "no-referrer"
        return response
    try:
        stream = storage.open_stream(name)
    except FileNotFoundError as exc:
        raise Http404("The image file is missing from its bucket.") from exc
    if isinstance(request, ASGIRequest):
        body = _blocks(stream)
    else:
        body = iter(lambda: stream.read(BLOCK_BYTES), b"")
    response = StreamingHttpResponse(body, content_type=content_type)
    response._resource_closers.append(stream.close)
    response["Content-Length"] = str(stream.size)
    response["Cache-Control"] = "private, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    return response


async def _blocks(handle):
    read = sync_to_async(handle.read, thread_sensitive=False)
    while block := await read(BLOCK_BYTES):
        yield block


def _proxy_response(field):
    """An empty answer that tells the proxy which file to send (it must exist: a missing file
    is a 404 here, not the proxy's)."""
    path = Path(field.path)
    if not path.is_file():
        raise Http404("The image file is missing on the server.")
    response = HttpResponse(content_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")
    if settings.MEDIA_ACCEL == "nginx":
        relative = path.resolve().relative_to(Path(settings.MEDIA_ROOT).resolve()).as_posix()
        response["X-Accel-Redirect"] = settings.MEDIA_ACCEL_PREFIX + quote(relative)
    else:
        response["X-Sendfile"] = str(path.resolve())
    return response
