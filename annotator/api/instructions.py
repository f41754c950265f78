"""/api/projects/<id>/instructions/: the labeling instructions (every member reads them,
owners change them)."""
from drf_spectacular.utils import extend_schema
from rest_framework import parsers
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import OWNER_ROLES
from annotator.api.permissions import ANY_MEMBER
from annotator.api.schema import BODY_REFUSALS, FORBIDDEN, NOT_FOUND, NOT_SIGNED_IN, PROJECT_ID
from annotator.api.serializers.instructions import InstructionsSerializer, InstructionsUpdateSerializer
from annotator.api.viewsets import ProjectScopedViewSet
from annotator.projects.instructions import instructions_for, update_instructions


class InstructionsViewSet(ProjectScopedViewSet):
    """A project's instructions: Markdown text, and a description and example images per class."""

    roles = {"instructions": ANY_MEMBER, "change_instructions": OWNER_ROLES}

    @extend_schema(
        summary="The labeling instructions: source and sanitised HTML",
        tags=["instructions"],
        parameters=[PROJECT_ID],
        responses={200: InstructionsSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="instructions", url_name="instructions",
            parser_classes=[parsers.JSONParser])
    def instructions(self, request, pk=None):
        return Response(self._body())

    @extend_schema(
        summary="Change the instructions, class descriptions or example images (owners only)",
        description=(
            "Send only what changes: `markdown`, and in `classes` an entry per changed class with its `id` "
            "and a new `description` and/or the whole new list of `examples` (item ids of this project). "
            "Members see the new version when they next open the labeling page."
        ),
        tags=["instructions"],
        parameters=[PROJECT_ID],
        request=InstructionsUpdateSerializer,
        responses={200: InstructionsSerializer, **BODY_REFUSALS},
    )
    @instructions.mapping.patch
    def change_instructions(self, request, pk=None):
        serializer = InstructionsUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        update_instructions(self.project, markdown=data.get("markdown"), classes=data.get("classes"))
        return Response(self._body())

    def _body(self):
        body = instructions_for(self.project)
        request = self.request
        for row in body["classes"]:
            for example in row["examples"]:
                example["image_url"] = request.build_absolute_uri(example["image_url"])
        return body
