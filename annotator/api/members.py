"""/api/projects/<id>/members/: who is in a project with which role; owners add members,
change roles and remove members."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import OWNER_ROLES
from annotator.api.permissions import ANY_MEMBER
from annotator.api.schema import (
    BODY_REFUSALS,
    FORBIDDEN,
    INVALID,
    NOT_FOUND,
    NOT_SIGNED_IN,
    PROJECT_ID,
    PROJECT_ROUTES,
    USERNAME,
)
from annotator.api.serializers.members import MemberChangeSerializer, MemberRoleSerializer, MembershipSerializer
from annotator.api.viewsets import ProjectScopedViewSet
from annotator.projects.members import add_member, change_role, remove_member


class MemberViewSet(ProjectScopedViewSet):
    """A project's members and their roles."""

    roles = {"members": ANY_MEMBER, "add": OWNER_ROLES, "member": OWNER_ROLES, "remove": OWNER_ROLES}

    @extend_schema(
        summary="Members of the project with their roles",
        description=PROJECT_ROUTES,
        tags=["members"],
        parameters=[PROJECT_ID],
        responses={200: MembershipSerializer(many=True), 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def members(self, request, pk=None):
        memberships = self.project.memberships.select_related("user").order_by("user__username")
        return Response(MembershipSerializer(memberships, many=True).data)

    @extend_schema(
        summary="Add a member or change a member's role (owners only)",
        description="The user must already have an account; an existing member gets the new role.",
        tags=["members"],
        parameters=[PROJECT_ID],
        request=MemberChangeSerializer,
        responses={
            201: OpenApiResponse(MembershipSerializer, description="The user became a member."),
            200: OpenApiResponse(MembershipSerializer, description="The member's role was changed."),
            **BODY_REFUSALS,
        },
    )
    @members.mapping.post
    def add(self, request, pk=None):
        serializer = MemberChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        already = self.project.memberships.filter(user__username=serializer.validated_data["username"]).exists()
        membership = add_member(self.project, **serializer.validated_data)
        code = status.HTTP_200_OK if already else status.HTTP_201_CREATED
        return Response(MembershipSerializer(membership).data, status=code)

    @extend_schema(
        summary="Change a member's role (owners only)",
        description="The only owner of a project cannot be given another role.",
        tags=["members"],
        parameters=[PROJECT_ID, USERNAME],
        request=MemberRoleSerializer,
        responses={
            200: MembershipSerializer,
            **BODY_REFUSALS,
        },
    )
    @action(detail=True, methods=["patch"], url_path=r"members/(?P<username>[\w.@+-]+)", url_name="member")
    def member(self, request, pk=None, username=None):
        serializer = MemberRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = change_role(self.project, username, serializer.validated_data["role"])
        return Response(MembershipSerializer(membership).data)

    @extend_schema(
        summary="Remove a member from the project (owners only)",
        description="Their answers stay. The only owner cannot be removed.",
        tags=["members"],
        parameters=[PROJECT_ID, USERNAME],
        request=None,
        responses={
            204: OpenApiResponse(description="Removed."),
            400: INVALID,
            401: NOT_SIGNED_IN,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    @member.mapping.delete
    def remove(self, request, pk=None, username=None):
        remove_member(self.project, username)
        return Response(status=status.HTTP_204_NO_CONTENT)
