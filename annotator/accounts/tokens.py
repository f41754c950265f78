"""API tokens: issuing one (the plain value is returned once), a user's list, revoking, and
the DRF authentication class that reads `Authorization: Token <token>`.

Written here instead of using rest_framework.authtoken: its Token model stores the key
itself (a database copy is a set of working credentials), has no expiry and allows one
token per user. `ApiToken` stores a SHA-256 hash and a short prefix (models.py says why)."""
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from annotator.access import NotFound, is_row_id
from annotator.models import ApiToken, token_digest

KEYWORD = "Token"
# last_used_at is written at most this often per token: not one write per API call.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def issue_token(user, name=""):
    """A new token for `user`: returns (the row, the plain key). The key is never stored."""
    key = ApiToken.new_key()
    token = ApiToken.objects.create(
        user=user,
        key_hash=token_digest(key),
        prefix=key[: ApiToken.PREFIX_LENGTH],
        name=name[:100],
        expires_at=timezone.now() + timedelta(days=settings.API_TOKEN_TTL_DAYS),
    )
    return token, key


def user_tokens(user):
    """The user's tokens that still work, newest first."""
    return ApiToken.objects.filter(user=user, expires_at__gt=timezone.now())


def revoke_token(user, token_id):
    """Delete one of the user's tokens; another user's token is "not found", like a missing one."""
    deleted = is_row_id(token_id) and ApiToken.objects.filter(user=user, pk=int(token_id)).delete()[0]
    if not deleted:
        raise NotFound(f"You have no token with id {token_id}.")


def token_user(key):
    """The (user, token) of a plain key, or AuthenticationFailed with a sentence."""
    token = ApiToken.objects.select_related("user").filter(key_hash=token_digest(key)).first()
    if token is None:
        raise exceptions.AuthenticationFailed("Invalid token.")
    now = timezone.now()
    if token.expires_at <= now:
        raise exceptions.AuthenticationFailed("The token has expired; ask for a new one at /api/auth/token/.")
    if not token.user.is_active:
        raise exceptions.AuthenticationFailed("This account is deactivated.")
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user, token


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Token <token>`, checked against the hashed `ApiToken` rows."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed('Send the header as "Authorization: Token <token>".')
        try:
            key = parts[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        return token_user(key)

    def authenticate_header(self, request):
        return KEYWORD
