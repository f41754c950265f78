"""POST /api/auth/token/: a username and password for an API token, with password guessing
slowed down per client address."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import AnonRateThrottle

from annotator.api.schema import UNSUPPORTED
from annotator.api.serializers.auth import CredentialsSerializer, TokenSerializer


class TokenAttemptThrottle(AnonRateThrottle):
    """Slows password guessing: AUTH_TOKEN_RATE attempts per client address."""

    scope = "auth-token"


@extend_schema(
    tags=["auth"],
    request=CredentialsSerializer,
    responses={
        200: TokenSerializer,
        400: OpenApiResponse(description="Wrong username or password."),
        415: UNSUPPORTED,
        429: OpenApiResponse(description="Too many attempts; wait and try again."),
    },
    auth=[],
)
class TokenView(ObtainAuthToken):
    """Exchange a username and password for an API token."""

    throttle_classes = [TokenAttemptThrottle]
