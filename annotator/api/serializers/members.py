"""Memberships, and the bodies that add a member or change a role."""
from rest_framework import serializers

from annotator.models import Membership, Role


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role"]
        read_only_fields = fields


class MemberChangeSerializer(serializers.Serializer):
    username = serializers.CharField(help_text="An existing account.")
    role = serializers.ChoiceField(choices=Role.choices)


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)
