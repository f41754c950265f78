"""The request-size limit, enforced before Django reads a body (an ASGI middleware).

Django checks DATA_UPLOAD_MAX_MEMORY_SIZE only after the ASGI handler has spooled the whole
body to a temporary file, and the image and checkpoint limits only once the upload has
arrived: a 150 MB anonymous POST to the login page used to be read to the end. This
middleware sits in front of Django and refuses with 413:

1. a declared `Content-Length` above the limit, before a single byte of the body is read;
2. a streamed body (chunked, or lying about its length) as soon as the bytes received pass
   the limit: the 413 is sent and Django is told the client went away, so the rest of the
   body is never read.

The limit is REQUEST_MAX_BYTES (forms, JSON, label answers), and UPLOAD_MAX_REQUEST_BYTES on
the upload routes (UPLOAD_ROUTES: images and zip archives, label CSVs, model checkpoints) when
the caller is signed in (session cookie or API token) and allowed to upload there (an owner of
the project in the URL). The caller is resolved from the headers alone, before the body.

Written here rather than taken from a library: the ASGI body-limit middlewares around
(Starlette's, asgi-tools') have one limit per app or per route, not one that depends on who
the Django user is and what role they hold in the project named by the URL.
"""
import io
import json
import logging
from importlib import import_module

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.core.handlers.asgi import ASGIRequest
from django.db import InterfaceError, OperationalError
from django.urls import Resolver404, resolve

from annotator.access import OWNER_ROLES, is_row_id
from annotator.models import Membership

log = logging.getLogger(__name__)

# URL names (see annotator/pages/urls.py and annotator/api/urls.py) that accept large uploads.
UPLOAD_ROUTES = frozenset({
    "project-import",
    "label-import",
    "labelstudio-import",
    "suggestion-import",
    "model-checkpoint",
    "api:project-images",
    "api:project-label-import",
    "api:project-labelstudio-import",
    "api:project-suggestion-import",
    "api:project-model-checkpoint",
})
UPLOAD_ROLES = OWNER_ROLES
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def megabytes(n):
    return f"{n / (1024 * 1024):.1f} MB"


class RequestSizeLimit:
    """Wraps the HTTP application (Django's ASGI handler); websockets never reach it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            limit, upload = await self.limit_for(scope)
        except (OperationalError, InterfaceError) as exc:  # who uploads is read from the database
            log.warning("%s %s: database unavailable while checking the uploader (%s); answered 503",
                        scope.get("method"), scope.get("path"), type(exc).__name__)
            return await _respond(scope, send, 503, DATABASE_UNAVAILABLE,
                                  [(b"retry-after", str(settings.UNAVAILABLE_RETRY_AFTER_S).encode())])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            return await _refuse(scope, send, limit, upload)

        read, refused = 0, False

        async def limited_receive():
            nonlocal read, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    refused = True
                    await _refuse(scope, send, limit, upload)
                    # Django's handler stops reading at a disconnect and answers nothing.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def limit_for(self, scope):
        """(the byte limit for this request, whether it is an upload route)."""
        if scope.get("method") not in BODY_METHODS:
            return settings.REQUEST_MAX_BYTES, False
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        try:
            match = resolve(path)
        except Resolver404:
            return settings.REQUEST_MAX_BYTES, False
        if match.view_name not in UPLOAD_ROUTES:
            return settings.REQUEST_MAX_BYTES, False
        allowed = await sync_to_async(may_upload)(scope, match.kwargs.get("pk"))
        return (settings.UPLOAD_MAX_REQUEST_BYTES if allowed else settings.REQUEST_MAX_BYTES), True


def may_upload(scope, project_id):
    """Whether the caller (session cookie or API token, read from the headers) may upload
    into the project: signed in, active, and holding an upload role there."""
    if not is_row_id(project_id):
        return False
    user = caller(scope)
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return Membership.objects.filter(project_id=project_id, user=user, role__in=UPLOAD_ROLES).exists()


def caller(scope):
    """The user of the session cookie, else of an API credential (any of the API's
    authentication classes but the session one), else None. No body is read."""
    request = ASGIRequest(scope, io.BytesIO())
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if session_key:
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = auth.get_user(request)
        if user.is_authenticated:
            return user
    from rest_framework.authentication import SessionAuthentication
    from rest_framework.exceptions import APIException
    from rest_framework.request import Request
    from rest_framework.settings import api_settings

    api_request = Request(request)
    for authentication in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
        if issubclass(authentication, SessionAuthentication):
            continue
        try:
            found = authentication().authenticate(api_request)
        except APIException:
            return None
        if found:
            return found[0]
    return None


def _declared_length(scope):
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def refusal_text(limit, upload):
    if upload and limit < settings.UPLOAD_MAX_REQUEST_BYTES:
        return (
            f"The request body is larger than {megabytes(limit)}. Large uploads are accepted only from "
            "signed-in project owners; sign in as an owner of this project, or ask one to upload."
        )
    if upload:
        return (
            f"The upload is larger than {megabytes(limit)}, the most one request may carry "
            "(UPLOAD_MAX_REQUEST_BYTES). Split it into several uploads, or import a folder on the server "
            "with `manage.py import_images`."
        )
    return (
        f"The request body is larger than {megabytes(limit)}, the most this request may carry "
        "(REQUEST_MAX_BYTES)."
    )


async def _refuse(scope, send, limit, upload):
    await _respond(scope, send, 413, refusal_text(limit, upload))


# the same sentence as annotator.operations.unavailable (a layer above this module)
DATABASE_UNAVAILABLE = ("The database is unavailable for a moment (restarting or overloaded). "
                        "Try again in a few seconds.")


async def _respond(scope, send, status, text, headers=()):
    if scope.get("path", "").startswith("/api/"):
        body, content_type = json.dumps({"detail": text}).encode(), b"application/json"
    else:
        body, content_type = (text + "\n").encode(), b"text/plain; charset=utf-8"
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *headers,
        ],
    })
    await send({"type": "http.response.body", "body": body})
