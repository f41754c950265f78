"""The model of a project: its live status and versions (every member), and owners' reset and
checkpoint upload (/api/projects/<id>/status/, versions/, model/)."""
from drf_spectacular.utils import extend_schema
from rest_framework import parsers
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import OWNER_ROLES, NotFound, is_row_id
from annotator.api.permissions import ANY_MEMBER
from annotator.api.project_settings import settings_body
from annotator.api.schema import (
    BODY_REFUSALS,
    FORBIDDEN,
    NOT_FOUND,
    NOT_FOUND_OR_PAGE,
    NOT_SIGNED_IN,
    PROJECT_ID,
    PROJECT_ROUTES,
    VERSION_ID,
)
from annotator.api.serializers.model import (
    CheckpointReportSerializer,
    CheckpointUploadSerializer,
    ModelResetSerializer,
    ModelVersionSerializer,
    TrainerStatusSerializer,
)
from annotator.api.serializers.project_settings import ProjectSettingsSerializer
from annotator.api.viewsets import Pages, ProjectScopedViewSet
from annotator.modelloop.status import trainer_status, version_accuracies
from annotator.modelloop.steering import reset_model, upload_checkpoint
from annotator.models import TrainerState


class ModelViewSet(ProjectScopedViewSet):
    """The model's status and versions, and starting it over."""

    roles = {
        "trainer_status": ANY_MEMBER,
        "versions": ANY_MEMBER,
        "version": ANY_MEMBER,
        "model_reset": OWNER_ROLES,
        "model_checkpoint": OWNER_ROLES,
    }

    @extend_schema(
        summary="Live model status",
        description=(
            "The training phase, the model version serving guesses, the device and the accuracy "
            "of the guesses on audit items. The websocket /ws/projects/{id}/ pushes the same object."
        ),
        parameters=[PROJECT_ID],
        responses={200: TrainerStatusSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="status", url_name="status")
    def trainer_status(self, request, pk=None):
        return Response(trainer_status(self.project))

    @extend_schema(
        summary="Model versions, newest first (failed runs included)",
        description=PROJECT_ROUTES,
        tags=["models"],
        parameters=[PROJECT_ID],
        responses={
            200: ModelVersionSerializer(many=True), 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND_OR_PAGE,
        },
    )
    @action(detail=True, methods=["get"], pagination_class=Pages)
    def versions(self, request, pk=None):
        page = self.paginate_queryset(self.project.model_versions.order_by("-created_at", "-id"))
        data = ModelVersionSerializer(page, many=True, context=_version_context(self.project)).data
        return self.get_paginated_response(data)

    @extend_schema(
        summary="One model version",
        description=PROJECT_ROUTES,
        tags=["models"],
        parameters=[PROJECT_ID, VERSION_ID],
        responses={200: ModelVersionSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<version_id>\d+)", url_name="version")
    def version(self, request, pk=None, version_id=None):
        version = self.project.model_versions.filter(pk=version_id).first() if is_row_id(version_id) else None
        if version is None:
            raise NotFound(f"Model version {version_id} is not in this project.")
        return Response(ModelVersionSerializer(version, context=_version_context(self.project)).data)

    @extend_schema(
        summary="Reset the model (owners only)",
        description=(
            "The model starts over: the trainer pretrains again (or loads the uploaded checkpoint), the queue "
            "and the guesses are gone until its first update. Labels stay. Old versions stay listed."
        ),
        tags=["model"],
        parameters=[PROJECT_ID],
        request=ModelResetSerializer,
        responses={200: ProjectSettingsSerializer, **BODY_REFUSALS},
    )
    @action(detail=True, methods=["post"], url_path="model/reset", url_name="model-reset",
            parser_classes=[parsers.JSONParser])
    def model_reset(self, request, pk=None):
        serializer = ModelResetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reset_model(self.project, by=request.user, clear_checkpoint=serializer.validated_data["clear_checkpoint"])
        return Response(settings_body(self.project))

    @extend_schema(
        summary="Start the model from an uploaded checkpoint (owners only)",
        description=(
            "Transfer learning: a checkpoint exported from a project of this app (GET export/?format=model) or a "
            "PyTorch state dict of the same encoder, loaded with weights_only=True. The model resets and starts "
            "from that encoder instead of pretraining. Refused with the reason when nothing in it fits."
        ),
        tags=["model"],
        parameters=[PROJECT_ID],
        request={"multipart/form-data": CheckpointUploadSerializer},
        responses={200: CheckpointReportSerializer, **BODY_REFUSALS},
    )
    @action(detail=True, methods=["post"], url_path="model/checkpoint", url_name="model-checkpoint",
            parser_classes=[parsers.MultiPartParser, parsers.FormParser])
    def model_checkpoint(self, request, pk=None):
        serializer = CheckpointUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(upload_checkpoint(self.project, serializer.validated_data["checkpoint"], by=request.user))


def _version_context(project):
    state = TrainerState.objects.filter(project=project).only("current_version_id").first()
    return {
        "current_id": state.current_version_id if state else None,
        "accuracies": version_accuracies(project),
    }
