"""While the database cannot be reached (restarting, failing over, out of connections), every
request that needs it answers 503 Service Unavailable with a `Retry-After`, instead of a 500
and a traceback in the log for each one: a JSON `{"detail": ...}` under /api/, a short page
elsewhere. Clients (the labeling page, `loadclient`, scripts) retry a 503 with the same
idempotency key, so nothing is lost or doubled.

Only connection-level failures count (django.db's OperationalError and InterfaceError: the
server refused or dropped the connection, the database is locked on SQLite); a query the
database rejects (IntegrityError, ProgrammingError) stays a bug and a 500. The view's
transaction has rolled back by the time this runs, and the broken connection is closed so
that the next request connects afresh.

A middleware's `process_exception` sees what the view raised, the API's included (DRF
re-raises what its exception handler does not know); the database is only used inside views
(sessions and users are read lazily, when a view asks).
"""
import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

log = logging.getLogger(__name__)

MESSAGE = "The database is unavailable for a moment (restarting or overloaded). Try again in a few seconds."


def unavailable_response(request):
    retry_after = str(settings.UNAVAILABLE_RETRY_AFTER_S)
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": MESSAGE}, status=503)
    else:
        response = HttpResponse(
            "<!doctype html><title>Unavailable for a moment</title>"
            f"<h1>Unavailable for a moment</h1><p>{MESSAGE}</p>",
            status=503, content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = retry_after
    response["Cache-Control"] = "no-store"
    return response


def _close_broken_connections():
    for conn in connections.all(initialized_only=True):
        try:
            conn.close_if_unusable_or_obsolete()
        except Exception:  # noqa: BLE001 - closing a dead connection may fail too; it is dropped either way
            log.debug("Closing database connection %s failed", conn.alias, exc_info=True)


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """OperationalError / InterfaceError from a view -> 503 with Retry-After (see the module)."""

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.warning("%s %s: database unavailable (%s: %s); answered 503", request.method, request.path,
                    type(exception).__name__, " ".join(str(exception).split())[:300])
        _close_broken_connections()
        return unavailable_response(request)
