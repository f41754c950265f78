"""The OpenAPI pieces every API module shares: the refusal shape and the responses built on it,
the path parameters, and the refusals of an operation that takes a request body."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from annotator.access import MAX_ID


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="A sentence that says what went wrong and what to do.")


ERROR = ErrorSerializer
NOT_FOUND = OpenApiResponse(ERROR, description="Not a member of this project (or no such project).")
NOT_FOUND_OR_PAGE = OpenApiResponse(
    ERROR, description="Not a member of this project (or no such project), or no such page."
)
NO_PAGE = OpenApiResponse(ERROR, description="No such page.")
NOT_SIGNED_IN = OpenApiResponse(
    ERROR, description='Not signed in: send "Authorization: Token <token>" (see /api/auth/token/).'
)
FORBIDDEN = OpenApiResponse(ERROR, description="The caller's role does not allow this.")
UNSUPPORTED = OpenApiResponse(ERROR, description="The body is not in one of the request's content types.")
# Refusals from services carry `detail`; serializer validation gives messages per field.
FIELD_MESSAGES = {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}}
INVALID = OpenApiResponse(
    {
        "type": "object",
        "properties": {
            "detail": {"type": "string", "description": "A sentence that says what to change."},
            "non_field_errors": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": {
            "description": "Messages for the field of that name (an object per entry for lists and nested fields).",
            "anyOf": [FIELD_MESSAGES, {"type": "object"}],
        },
    },
    description="Invalid request: `detail` or the messages per field say what to change.",
)
ROW_ID = {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID}
PROJECT_ID = OpenApiParameter("id", ROW_ID, OpenApiParameter.PATH, description="The project's id.")
USERNAME = OpenApiParameter("username", OpenApiTypes.STR, OpenApiParameter.PATH, description="The member's username.")
ANNOTATION_ID = OpenApiParameter("annotation_id", ROW_ID, OpenApiParameter.PATH, description="The annotation's id.")
ITEM_ID = OpenApiParameter("item_id", ROW_ID, OpenApiParameter.PATH, description="The item's id.")
VERSION_ID = OpenApiParameter("version_id", ROW_ID, OpenApiParameter.PATH, description="The version's id.")
# The refusals of every operation that takes a request body.
DISK_FULL = OpenApiResponse(ERROR, description="The server's disk is full: the import stopped (what was stored "
                                                "before stays, whole); free space and send the files again.")
BODY_REFUSALS = {400: INVALID, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND, 415: UNSUPPORTED}

# The description of the operations that have none of their own. One viewset served every
# project route once and lent them its docstring; kept so the published schema stays the same.
PROJECT_ROUTES = "Projects the caller is a member of, and what members do in them."


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The schema's `tokenAuth` for the app's own token class (annotator.accounts.tokens)."""

    target_class = "annotator.accounts.tokens.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'An API token from /api/auth/token/, sent as "Token <token>". Tokens expire.',
        }
