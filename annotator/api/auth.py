"""POST /api/auth/token/: a username and password for a new API token, with password guessing
slowed down per client address (a DRF throttle) and locked out per (username, address)
(django-axes, like the sign-in page). GET /api/tokens/ and DELETE /api/tokens/<id>/: the
caller's tokens."""
import logging

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from annotator.accounts.client_address import client_ip
from annotator.accounts.lockout import lockout_message
from annotator.accounts.tokens import issue_token, revoke_token, user_tokens
from annotator.api.exceptions import ServiceErrorsMixin
from annotator.api.schema import ERROR, NOT_SIGNED_IN, ROW_ID, UNSUPPORTED
from annotator.api.serializers.auth import ApiTokenSerializer, CredentialsSerializer, TokenSerializer

log = logging.getLogger(__name__)

try:  # what the Redis cache raises when Redis cannot be reached (redis-py comes with channels-redis)
    from redis.exceptions import RedisError as CacheUnavailable
except ImportError:  # pragma: no cover - no Redis client installed, so no Redis cache either
    CacheUnavailable = OSError

TOO_MANY = OpenApiResponse(ERROR, description="Too many attempts from this address, or this account is locked "
                                              "out here after too many wrong passwords; wait and try again.")


class ClientAddressThrottle(AnonRateThrottle):
    """Counts per client address as annotator.accounts.client_address decides (a forwarded
    header only from a trusted proxy), instead of DRF's raw X-Forwarded-For."""

    def get_ident(self, request):
        return client_ip(request)

    def allow_request(self, request, view):
        """Fails open while the shared cache (Redis) is down: the counters are out of reach for
        a moment, and signing in must not become a 500. Password guessing stays bounded by the
        lockout, whose attempts are database rows (django-axes), not cache entries."""
        try:
            return super().allow_request(request, view)
        except CacheUnavailable as exc:
            log.warning("Throttle %s not applied: the cache is unavailable (%s)", self.scope, exc)
            return True


class TokenAttemptThrottle(ClientAddressThrottle):
    """Slows password guessing: AUTH_TOKEN_RATE attempts per client address."""

    scope = "auth-token"


class LockedOut(exceptions.Throttled):
    default_detail = "Locked out."

    def __init__(self):
        super().__init__(detail=lockout_message())


@extend_schema(
    tags=["auth"],
    summary="Exchange a username and password for a new API token",
    description=(
        "Each call issues a new token; the value is in this answer only (the server keeps its hash). It "
        "expires after API_TOKEN_TTL_DAYS days and is revoked when the password changes or the account is "
        "deactivated. List and revoke your tokens at /api/tokens/."
    ),
    request=CredentialsSerializer,
    responses={
        200: TokenSerializer,
        400: OpenApiResponse(description="Wrong username or password."),
        415: UNSUPPORTED,
        429: TOO_MANY,
    },
    auth=[],
)
class TokenView(APIView):
    authentication_classes = []
    permission_classes = []
    throttle_classes = [TokenAttemptThrottle]

    def post(self, request):
        credentials = CredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        data = credentials.validated_data
        # The Django request: django-axes reads the address and flags a lockout on it.
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if getattr(request._request, "axes_locked_out", False):
            raise LockedOut()
        if user is None:
            raise exceptions.ValidationError({"non_field_errors": ["Unable to log in with provided credentials."]})
        token, key = issue_token(user, data.get("name", ""))
        token.token = key  # the plain value, for this answer only
        return Response(TokenSerializer(token).data)


class TokenListView(APIView):
    @extend_schema(
        tags=["auth"],
        summary="Your API tokens",
        description="The caller's tokens that have not expired, newest first (never the token values).",
        responses={200: ApiTokenSerializer(many=True), 401: NOT_SIGNED_IN},
    )
    def get(self, request):
        return Response(ApiTokenSerializer(user_tokens(request.user), many=True).data)


class TokenDetailView(ServiceErrorsMixin, APIView):
    @extend_schema(
        tags=["auth"],
        summary="Revoke one of your API tokens",
        parameters=[OpenApiParameter("token_id", ROW_ID, OpenApiParameter.PATH, description="The token's id.")],
        responses={
            204: OpenApiResponse(description="Revoked."),
            401: NOT_SIGNED_IN,
            404: OpenApiResponse(ERROR, description="You have no token with this id."),
        },
    )
    def delete(self, request, token_id):
        revoke_token(request.user, token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
