"""ASGI entry point: HTTP (Django) and websockets (Channels) in one application."""
import os

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings")


class SyncChainASGIHandler(ASGIHandler):
    """Django's ASGI handler with the middleware chain and the view run synchronously, in one
    thread hop per request.

    Every view of this app is synchronous (DRF and the ORM), and so are the middlewares'
    hooks. Django's own handler builds an asynchronous chain whenever the middlewares allow
    it, and then runs each MiddlewareMixin hook (process_request, process_response) in a
    thread of its own: about 16 hops per request, about 5 ms of CPU on a 2-core machine, a
    quarter of a labeling request (docs/benchmarks.md, "One thread hop per request"). Here
    the chain is built as under WSGI and called once in the thread the request signals and
    the database connection use. Streaming responses (exports) are sent as before: the
    handler's send_response reads sync and async iterators alike."""

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


django.setup(set_prefix=False)
django_asgi_app = SyncChainASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from annotator.live.routing import websocket_urlpatterns  # noqa: E402
from annotator.request_limits import RequestSizeLimit  # noqa: E402

# Outermost: a body over the limit is refused before Django (or anything else) reads it.
# Static files: WhiteNoise, in the middleware (settings).
http_app = RequestSizeLimit(django_asgi_app)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
