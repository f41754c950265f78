"""ASGI entry point: HTTP (Django) and websockets (Channels) in one application."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings")
django_asgi_app = get_asgi_application()

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
