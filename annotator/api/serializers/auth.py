"""Request and response bodies of /api/auth/token/ and /api/tokens/."""
from rest_framework import serializers

from annotator.models import ApiToken


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})
    name = serializers.CharField(
        max_length=100, required=False, allow_blank=True,
        help_text="What the token is for (a script, a machine): shown in your token list.",
    )


class ApiTokenSerializer(serializers.ModelSerializer):
    """A token as its owner's list shows it: never the token itself."""

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at"]
        read_only_fields = fields
        extra_kwargs = {"prefix": {"help_text": "The token's first characters, to tell tokens apart."}}


class TokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(
        help_text='Send it as "Authorization: Token <token>". Shown only now: the server keeps only its hash.'
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = ["token", *ApiTokenSerializer.Meta.fields]
        read_only_fields = fields
