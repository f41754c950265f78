"""/api/projects/<id>/settings/: a project's settings and classes (every member reads them,
owners change them)."""
from drf_spectacular.utils import extend_schema
from rest_framework import parsers
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import OWNER_ROLES
from annotator.api.permissions import ANY_MEMBER
from annotator.api.schema import BODY_REFUSALS, FORBIDDEN, NOT_FOUND, NOT_SIGNED_IN, PROJECT_ID, PROJECT_ROUTES
from annotator.api.serializers.project_settings import ProjectSettingsSerializer, ProjectSettingsUpdateSerializer
from annotator.api.viewsets import ProjectScopedViewSet
from annotator.modelloop.steering import set_encoder, set_paused
from annotator.projects.changes import SETTINGS_FIELDS, change_project
from annotator.projects.classes import class_usage


class SettingsViewSet(ProjectScopedViewSet):
    """A project's settings, training pause and classes."""

    roles = {"project_settings": ANY_MEMBER, "change_settings": OWNER_ROLES}

    @extend_schema(
        summary="The project's settings and classes",
        description=PROJECT_ROUTES,
        tags=["settings"],
        parameters=[PROJECT_ID],
        responses={200: ProjectSettingsSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="settings", url_name="settings", parser_classes=[parsers.JSONParser])
    def project_settings(self, request, pk=None):
        return Response(settings_body(self.project))

    @extend_schema(
        summary="Change settings, and add, rename, reorder or remove classes (owners only)",
        description=(
            "Send only what changes. `classes` is the whole new list: keep a class by sending its id "
            "(with a new name to rename it, at a new place to move it), add one without an id, remove one "
            "by leaving it out; a class that any answer uses cannot be removed."
        ),
        tags=["settings"],
        parameters=[PROJECT_ID],
        request=ProjectSettingsUpdateSerializer,
        responses={
            200: ProjectSettingsSerializer,
            **BODY_REFUSALS,
        },
    )
    @project_settings.mapping.patch
    def change_settings(self, request, pk=None):
        serializer = ProjectSettingsUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        paused = changes.pop("training_paused", None)
        encoder = changes.pop("encoder", None)
        if changes:
            change_project(self.project, **changes)
        if encoder is not None:
            set_encoder(self.project, encoder, by=request.user)
        if paused is not None:
            set_paused(self.project, paused)
        return Response(settings_body(self.project))


def settings_body(project):
    """The body of GET settings/ (ProjectSettingsSerializer's shape)."""
    usage = class_usage(project)
    classes = [
        {"id": c.pk, "name": c.name, "hotkey": c.hotkey, "labels": usage[c.pk][0], "removable": not usage[c.pk][1],
         "is_none": c.is_none}
        for c in project.ordered_classes()
    ]
    return {
        **{field: getattr(project, field) for field in SETTINGS_FIELDS},
        "multi_label": project.multi_label,
        "training_paused": project.training_paused,
        "encoder": project.encoder,
        "model_generation": project.model_generation,
        "init_checkpoint": project.init_checkpoint_name or None,
        "none_class": next((c["name"] for c in classes if c["is_none"]), None),
        "classes": classes,
    }
