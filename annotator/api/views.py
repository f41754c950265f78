"""The REST API: projects, members, image and label import, leasing, answers, statistics,
and for administration: settings and classes, items, owners' corrections, model versions.

Every project-scoped request starts with `_project(request, pk, roles)`, which answers 404 to
outsiders and 403 to members whose role does not allow the verb. The work itself is one call
to annotator.services (or annotator.importing); refusals there become `{"detail": message}`
with their status (see exceptions.py).
"""
from django.contrib.auth import get_user_model
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, parsers, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from annotator.access import LABELING_ROLES, Invalid, NotFound, is_row_id, project_for, projects_for_user
from annotator.api import serializers as s
from annotator.api.exceptions import ServiceErrorsMixin
from annotator.dashboard import model_side
from annotator.dashboard.summary import dashboard_summary
from annotator.importing.images import import_uploads
from annotator.importing.labels import import_labels
from annotator.labeling import serializers as labeling_s
from annotator.labeling.answers import submit_annotation, undo_last
from annotator.labeling.corrections import correct_annotation, delete_annotation, review_item
from annotator.labeling.leasing import lease_next
from annotator.modelloop import predictions
from annotator.modelloop.status import trainer_status, version_accuracies
from annotator.modelloop.steering import reset_model, set_paused, upload_checkpoint
from annotator.models import Annotation, AnnotationChange, LabelClass, Membership, Project, Role, TrainerState
from annotator.projects.changes import SETTINGS_FIELDS, change_project, create_project
from annotator.projects.classes import class_usage, find_class
from annotator.projects.members import add_member, change_role, remove_member
from annotator.projects.selectors import project_stats, select_items

OWNER_ONLY = (Role.OWNER,)
DASHBOARD_ROLES = (Role.OWNER, Role.VIEWER)

ERROR = s.ErrorSerializer
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
ROW_ID = {"type": "integer", "format": "int64", "minimum": 1, "maximum": s.MAX_ID}
PROJECT_ID = OpenApiParameter("id", ROW_ID, OpenApiParameter.PATH, description="The project's id.")
USERNAME = OpenApiParameter("username", OpenApiTypes.STR, OpenApiParameter.PATH, description="The member's username.")
ANNOTATION_ID = OpenApiParameter("annotation_id", ROW_ID, OpenApiParameter.PATH, description="The annotation's id.")
ITEM_ID = OpenApiParameter("item_id", ROW_ID, OpenApiParameter.PATH, description="The item's id.")
VERSION_ID = OpenApiParameter("version_id", ROW_ID, OpenApiParameter.PATH, description="The version's id.")
# The refusals of every operation that takes a request body.
BODY_REFUSALS = {400: INVALID, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND, 415: UNSUPPORTED}


class Pages(PageNumberPagination):
    """`?page=` and `?page_size=` (at most 500)."""

    page_size_query_param = "page_size"
    max_page_size = 500


def _project(request, pk, roles=None):
    return project_for(request.user, pk, roles=roles)


class TokenAttemptThrottle(AnonRateThrottle):
    """Slows password guessing: AUTH_TOKEN_RATE attempts per client address."""

    scope = "auth-token"


@extend_schema(
    tags=["auth"],
    request=s.CredentialsSerializer,
    responses={
        200: s.TokenSerializer,
        400: OpenApiResponse(description="Wrong username or password."),
        415: UNSUPPORTED,
        429: OpenApiResponse(description="Too many attempts; wait and try again."),
    },
    auth=[],
)
class TokenView(ObtainAuthToken):
    """Exchange a username and password for an API token."""

    throttle_classes = [TokenAttemptThrottle]


@extend_schema_view(
    list=extend_schema(
        summary="The caller's projects",
        responses={200: s.ProjectSerializer(many=True), 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NO_PAGE},
    ),
    create=extend_schema(
        summary="Create a project; the caller becomes its owner",
        request=s.ProjectCreateSerializer,
        responses={201: s.ProjectSerializer, 400: INVALID, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 415: UNSUPPORTED},
    ),
    retrieve=extend_schema(
        summary="One project, with the caller's role",
        parameters=[PROJECT_ID],
        responses={200: s.ProjectSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    ),
)
class ProjectViewSet(
    ServiceErrorsMixin, mixins.ListModelMixin, mixins.CreateModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Projects the caller is a member of, and what members do in them."""

    serializer_class = s.ProjectSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Project.objects.none()
        user = self.request.user
        role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
        return (
            projects_for_user(user)
            .annotate(current_role=Subquery(role))
            .prefetch_related(Prefetch("classes", queryset=LabelClass.objects.order_by("order", "id")))
        )

    def get_object(self):
        # Membership decides: outsiders get 404, whatever the project exists or not.
        return _project(self.request, self.kwargs["pk"])

    def get_serializer_class(self):
        return s.ProjectCreateSerializer if self.action == "create" else s.ProjectSerializer

    def create(self, request, *args, **kwargs):
        serializer = s.ProjectCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = create_project(request.user, **serializer.validated_data)
        project = _project(request, project.pk)
        return Response(s.ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    # --- members ------------------------------------------------------------------------

    @extend_schema(
        methods=["GET"],
        summary="Members of the project with their roles",
        tags=["members"],
        parameters=[PROJECT_ID],
        responses={200: s.MembershipSerializer(many=True), 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @extend_schema(
        methods=["POST"],
        summary="Add a member or change a member's role (owners only)",
        description="The user must already have an account; an existing member gets the new role.",
        tags=["members"],
        parameters=[PROJECT_ID],
        request=s.MemberChangeSerializer,
        responses={
            201: OpenApiResponse(s.MembershipSerializer, description="The user became a member."),
            200: OpenApiResponse(s.MembershipSerializer, description="The member's role was changed."),
            **BODY_REFUSALS,
        },
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def members(self, request, pk=None):
        if request.method == "GET":
            project = _project(request, pk)
            memberships = project.memberships.select_related("user").order_by("user__username")
            return Response(s.MembershipSerializer(memberships, many=True).data)
        project = _project(request, pk, roles=OWNER_ONLY)
        serializer = s.MemberChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        already = project.memberships.filter(user__username=serializer.validated_data["username"]).exists()
        membership = add_member(project, **serializer.validated_data)
        code = status.HTTP_200_OK if already else status.HTTP_201_CREATED
        return Response(s.MembershipSerializer(membership).data, status=code)

    # --- import -------------------------------------------------------------------------

    @extend_schema(
        summary="Upload images or zip archives of images (owners only)",
        description=(
            "Each file is checked (a real image within the size limits) and de-duplicated by content; "
            "the report says what happened to every file."
        ),
        tags=["import"],
        parameters=[PROJECT_ID],
        request={"multipart/form-data": s.ImageUploadSerializer},
        responses={
            201: OpenApiResponse(s.ImportReportSerializer, description="At least one image was imported."),
            200: OpenApiResponse(s.ImportReportSerializer, description="Nothing new: duplicates or rejected files."),
            **BODY_REFUSALS,
        },
    )
    @action(detail=True, methods=["post"], parser_classes=[parsers.MultiPartParser, parsers.FormParser])
    def images(self, request, pk=None):
        project = _project(request, pk, roles=OWNER_ONLY)
        files = request.FILES.getlist("file")
        if not files:
            raise Invalid("Attach one or more images or zip archives in the multipart field 'file'.")
        report = import_uploads(project, files, user=request.user).as_dict()
        code = status.HTTP_201_CREATED if report["imported"] else status.HTTP_200_OK
        return Response(report, status=code)

    # --- leasing ------------------------------------------------------------------------

    @extend_schema(
        summary="The caller's current item, or a newly leased one",
        tags=["labeling"],
        parameters=[PROJECT_ID],
        description=(
            "Returns the item the caller holds, refreshing its lease; otherwise leases the best "
            "available item. With `exclude`, returns another item than those (a prefetch); a caller "
            "holds at most two items. 204 when no item is available to the caller."
        ),
        request=labeling_s.LeaseQuerySerializer,
        responses={
            200: labeling_s.LeasedItemSerializer,
            204: OpenApiResponse(description="No item is available to the caller right now."),
            **BODY_REFUSALS,
        },
    )
    @action(detail=True, methods=["post"], url_path="next", url_name="next")
    def next_item(self, request, pk=None):
        project = _project(request, pk, roles=LABELING_ROLES)
        serializer = labeling_s.LeaseQuerySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lease = lease_next(project, request.user, exclude=set(data["exclude"]), release=set(data["release"]))
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(labeling_s.LeasedItemSerializer(lease, context={"request": request}).data)

    # --- answers ------------------------------------------------------------------------

    @extend_schema(
        summary="Answer an item: a class name, or a skip",
        tags=["labeling"],
        parameters=[PROJECT_ID],
        description=(
            "Exactly once per idempotency key: a retry with the same key and body returns the "
            "stored answer with 200."
        ),
        request=labeling_s.AnswerSerializer,
        responses={
            201: OpenApiResponse(labeling_s.AnnotationSerializer, description="The answer was stored."),
            200: OpenApiResponse(labeling_s.AnnotationSerializer, description="A retry: the answer stored earlier."),
            **BODY_REFUSALS,
            409: OpenApiResponse(
                ERROR,
                description=(
                    "Not saved: the key was used for another answer, the caller already answered "
                    "the item, or the item was labeled by others after the caller's lease expired."
                ),
            ),
        },
    )
    @action(detail=True, methods=["post"], pagination_class=Pages)
    def annotations(self, request, pk=None):
        project = _project(request, pk, roles=LABELING_ROLES)
        serializer = labeling_s.AnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = submit_annotation(
            project,
            request.user,
            item_id=data["item"],
            label=data.get("label"),
            skip=data["skip"],
            idempotency_key=data["idempotency_key"],
            duration_ms=data.get("duration_ms"),
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(labeling_s.AnnotationSerializer(result.annotation).data, status=code)

    @extend_schema(
        summary="Undo the caller's last answer in the project",
        tags=["labeling"],
        parameters=[PROJECT_ID],
        description="The item becomes the caller's current item again (served by /next/).",
        request=None,
        responses={200: labeling_s.AnnotationSerializer, 400: INVALID, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="annotations/undo", url_name="annotations-undo")
    def undo(self, request, pk=None):
        project = _project(request, pk, roles=LABELING_ROLES)
        annotation = undo_last(project, request.user)
        return Response(labeling_s.AnnotationSerializer(annotation).data)

    # --- statistics ---------------------------------------------------------------------

    @extend_schema(
        summary="Labeling progress",
        description="Counts of items, labeled and skipped items, labels per class and per annotator.",
        parameters=[PROJECT_ID],
        responses={200: s.StatsSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        return Response(project_stats(_project(request, pk)))

    @extend_schema(
        summary="Live model status",
        description=(
            "The training phase, the model version serving guesses, the device and the accuracy "
            "of the guesses on audit items. The websocket /ws/projects/{id}/ pushes the same object."
        ),
        parameters=[PROJECT_ID],
        responses={200: s.TrainerStatusSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="status", url_name="status")
    def trainer_status(self, request, pk=None):
        return Response(trainer_status(_project(request, pk)))

    # --- project settings -----------------------------------------------------------------

    @extend_schema(
        methods=["GET"],
        summary="The project's settings and classes",
        tags=["settings"],
        parameters=[PROJECT_ID],
        responses={200: s.ProjectSettingsSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @extend_schema(
        methods=["PATCH"],
        summary="Change settings, and add, rename, reorder or remove classes (owners only)",
        description=(
            "Send only what changes. `classes` is the whole new list: keep a class by sending its id "
            "(with a new name to rename it, at a new place to move it), add one without an id, remove one "
            "by leaving it out; a class that any answer uses cannot be removed."
        ),
        tags=["settings"],
        parameters=[PROJECT_ID],
        request=s.ProjectSettingsUpdateSerializer,
        responses={
            200: s.ProjectSettingsSerializer,
            **BODY_REFUSALS,
        },
    )
    @action(
        detail=True,
        methods=["get", "patch"],
        url_path="settings",
        url_name="settings",
        parser_classes=[parsers.JSONParser],
    )
    def project_settings(self, request, pk=None):
        if request.method == "GET":
            return Response(_settings_body(_project(request, pk)))
        project = _project(request, pk, roles=OWNER_ONLY)
        serializer = s.ProjectSettingsUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        paused = changes.pop("training_paused", None)
        if changes:
            change_project(project, **changes)
        if paused is not None:
            set_paused(project, paused)
        return Response(_settings_body(project))

    # --- one member -----------------------------------------------------------------------

    @extend_schema(
        methods=["PATCH"],
        summary="Change a member's role (owners only)",
        description="The only owner of a project cannot be given another role.",
        tags=["members"],
        parameters=[PROJECT_ID, USERNAME],
        request=s.MemberRoleSerializer,
        responses={
            200: s.MembershipSerializer,
            **BODY_REFUSALS,
        },
    )
    @extend_schema(
        methods=["DELETE"],
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
    @action(
        detail=True, methods=["patch", "delete"], url_path=r"members/(?P<username>[\w.@+-]+)", url_name="member"
    )
    def member(self, request, pk=None, username=None):
        project = _project(request, pk, roles=OWNER_ONLY)
        if request.method == "DELETE":
            remove_member(project, username)
            return Response(status=status.HTTP_204_NO_CONTENT)
        serializer = s.MemberRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = change_role(project, username, serializer.validated_data["role"])
        return Response(s.MembershipSerializer(membership).data)

    # --- label import -----------------------------------------------------------------------

    @extend_schema(
        summary="Import existing labels from a CSV (owners only)",
        description=(
            "A UTF-8 CSV with the header `file,class`: an image's original file name (or its content "
            "hash) and its class. Each row becomes an imported answer of the caller, unless the image "
            "already has a label; importing the same CSV twice adds nothing the second time. The "
            "report gives every row's outcome. A file that cannot be read imports nothing."
        ),
        tags=["import"],
        parameters=[PROJECT_ID],
        request={"multipart/form-data": s.LabelUploadSerializer},
        responses={
            200: s.LabelImportReportSerializer,
            **BODY_REFUSALS,
        },
    )
    @action(
        detail=True, methods=["post"], url_path="labels/import", url_name="label-import",
        parser_classes=[parsers.MultiPartParser, parsers.FormParser],
    )
    def label_import(self, request, pk=None):
        project = _project(request, pk, roles=OWNER_ONLY)
        serializer = s.LabelUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(import_labels(project, request.user, serializer.validated_data["file"]))

    # --- items ------------------------------------------------------------------------------

    @extend_schema(
        summary="Items of the pool, filtered by state and by the model's guess",
        description=(
            "In pool order. `predicted`, `min_confidence` and `max_confidence` use the current model's "
            "probabilities; items it has not scored yet never match them."
        ),
        tags=["items"],
        parameters=[PROJECT_ID, s.ItemQuerySerializer],
        responses={
            200: s.ItemSerializer(many=True), 400: INVALID, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND_OR_PAGE,
        },
    )
    @action(detail=True, methods=["get"], pagination_class=Pages)
    def items(self, request, pk=None):
        project = _project(request, pk)
        query = s.ItemQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        current = predictions.current(project)
        selection = select_items(project, current=current, **query.validated_data)
        if isinstance(selection, QuerySet):
            selection = selection.prefetch_related(_live_labels())
        else:
            selection.queryset = selection.queryset.prefetch_related(_live_labels())
        page = self.paginate_queryset(selection)
        context = {"request": request, "predictions": current}
        return self.get_paginated_response(s.ItemSerializer(page, many=True, context=context).data)

    # --- annotations as owners see them -----------------------------------------------------------

    @extend_schema(
        summary="Answers in the project, newest first",
        description="Live answers (labels and skips); `include_undone` adds deleted and undone ones.",
        tags=["annotations"],
        parameters=[PROJECT_ID, s.AnnotationQuerySerializer],
        responses={
            200: s.AnnotationRecordSerializer(many=True),
            400: INVALID,
            401: NOT_SIGNED_IN,
            403: FORBIDDEN,
            404: NOT_FOUND_OR_PAGE,
        },
    )
    @annotations.mapping.get
    def list_annotations(self, request, pk=None):
        project = _project(request, pk)
        query = s.AnnotationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = self.paginate_queryset(_filtered_annotations(project, query.validated_data))
        return self.get_paginated_response(s.AnnotationRecordSerializer(page, many=True).data)

    @extend_schema(
        methods=["GET"],
        summary="One answer, with its history of corrections",
        tags=["annotations"],
        parameters=[PROJECT_ID, ANNOTATION_ID],
        responses={200: s.AnnotationDetailSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @extend_schema(
        methods=["PATCH"],
        summary="Correct an answer's class (owners only)",
        description="The old class is kept in the answer's history.",
        tags=["annotations"],
        parameters=[PROJECT_ID, ANNOTATION_ID],
        request=s.AnnotationCorrectionSerializer,
        responses={
            200: s.AnnotationDetailSerializer,
            **BODY_REFUSALS,
            409: OpenApiResponse(ERROR, description="The answer was deleted or undone."),
        },
    )
    @extend_schema(
        methods=["DELETE"],
        summary="Delete an answer (owners only)",
        description=(
            "The answer is marked undone, never erased: it stays in the history (with `include_undone`) "
            "and its item goes back to the queue when it lacks answers."
        ),
        tags=["annotations"],
        parameters=[PROJECT_ID, ANNOTATION_ID],
        request=None,
        responses={
            204: OpenApiResponse(description="Deleted."),
            401: NOT_SIGNED_IN,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: OpenApiResponse(ERROR, description="The answer was already deleted or undone."),
        },
    )
    @action(
        detail=True, methods=["get", "patch", "delete"], url_path=r"annotations/(?P<annotation_id>\d+)",
        url_name="annotation",
    )
    def annotation(self, request, pk=None, annotation_id=None):
        if request.method == "GET":
            project = _project(request, pk)
            return Response(s.AnnotationDetailSerializer(_annotation(project, annotation_id)).data)
        project = _project(request, pk, roles=OWNER_ONLY)
        if request.method == "DELETE":
            delete_annotation(project, int(annotation_id), by=request.user)
            return Response(status=status.HTTP_204_NO_CONTENT)
        serializer = s.AnnotationCorrectionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        correct_annotation(project, int(annotation_id), serializer.validated_data["label"], by=request.user)
        return Response(s.AnnotationDetailSerializer(_annotation(project, annotation_id)).data)

    # --- model versions -------------------------------------------------------------------

    @extend_schema(
        summary="Model versions, newest first (failed runs included)",
        tags=["models"],
        parameters=[PROJECT_ID],
        responses={
            200: s.ModelVersionSerializer(many=True), 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND_OR_PAGE,
        },
    )
    @action(detail=True, methods=["get"], pagination_class=Pages)
    def versions(self, request, pk=None):
        project = _project(request, pk)
        page = self.paginate_queryset(project.model_versions.order_by("-created_at", "-id"))
        data = s.ModelVersionSerializer(page, many=True, context=_version_context(project)).data
        return self.get_paginated_response(data)

    @extend_schema(
        summary="One model version",
        tags=["models"],
        parameters=[PROJECT_ID, VERSION_ID],
        responses={200: s.ModelVersionSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<version_id>\d+)", url_name="version")
    def version(self, request, pk=None, version_id=None):
        project = _project(request, pk)
        version = project.model_versions.filter(pk=int(version_id)).first()
        if version is None:
            raise NotFound(f"Model version {version_id} is not in this project.")
        return Response(s.ModelVersionSerializer(version, context=_version_context(project)).data)

    # --- dashboard, steering the model, reviewing labels ---------------------------------------

    @extend_schema(
        summary="The dashboard's numbers (owners and viewers)",
        description=(
            "Progress, labels per class, annotators (labels, skips, median time, agreement), and the model: "
            "the learning curve (audit accuracy per number of labels with 95% intervals, cross-validated "
            "accuracy per version, fine-tuning runs), the unlabeled pool's uncertainty histogram, labeled "
            "against predicted class counts, the most confused class pairs and the suspect labels (labels "
            "the model, with them held out, confidently disagrees with). Aggregates only: fast on large pools."
        ),
        tags=["dashboard"],
        parameters=[PROJECT_ID],
        responses={200: s.DashboardSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="dashboard", url_name="dashboard")
    def dashboard(self, request, pk=None):
        project = _project(request, pk, roles=DASHBOARD_ROLES)
        summary = dashboard_summary(project)
        body = {
            **summary,
            "per_class": [{"name": name, "labels": n} for name, n in summary["per_class"]],
            "annotators": [{k: v for k, v in row.items()} for row in summary["annotators"]],
            "fields": model_side.fields(summary["model"]),
        }
        return Response(body)

    @extend_schema(
        summary="Keep or relabel a suspect label (owners only)",
        description=(
            "With `label`, every live label of the item becomes that class (each change kept in the answer's "
            "history); without, the labels stay. Either way the item is marked reviewed and leaves the suspect list."
        ),
        tags=["items"],
        parameters=[PROJECT_ID, ITEM_ID],
        request=s.ReviewSerializer,
        responses={200: s.ReviewResultSerializer, 409: OpenApiResponse(ERROR, description="The item has no live label."),
                   **BODY_REFUSALS},
    )
    @action(detail=True, methods=["post"], url_path=r"items/(?P<item_id>\d+)/review", url_name="item-review",
            parser_classes=[parsers.JSONParser])
    def review(self, request, pk=None, item_id=None):
        project = _project(request, pk, roles=OWNER_ONLY)
        serializer = s.ReviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not is_row_id(item_id):
            raise NotFound(f"Item {item_id} is not in this project.")
        label = (serializer.validated_data.get("label") or "").strip() or None
        return Response(review_item(project, int(item_id), by=request.user, label=label))

    @extend_schema(
        summary="Reset the model (owners only)",
        description=(
            "The model starts over: the trainer pretrains again (or loads the uploaded checkpoint), the queue "
            "and the guesses are gone until its first update. Labels stay. Old versions stay listed."
        ),
        tags=["model"],
        parameters=[PROJECT_ID],
        request=s.ModelResetSerializer,
        responses={200: s.ProjectSettingsSerializer, **BODY_REFUSALS},
    )
    @action(detail=True, methods=["post"], url_path="model/reset", url_name="model-reset",
            parser_classes=[parsers.JSONParser])
    def model_reset(self, request, pk=None):
        project = _project(request, pk, roles=OWNER_ONLY)
        serializer = s.ModelResetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reset_model(project, by=request.user, clear_checkpoint=serializer.validated_data["clear_checkpoint"])
        return Response(_settings_body(project))

    @extend_schema(
        summary="Start the model from an uploaded checkpoint (owners only)",
        description=(
            "Transfer learning: a checkpoint exported from a project of this app (GET export/?format=model) or a "
            "PyTorch state dict of the same encoder, loaded with weights_only=True. The model resets and starts "
            "from that encoder instead of pretraining. Refused with the reason when nothing in it fits."
        ),
        tags=["model"],
        parameters=[PROJECT_ID],
        request={"multipart/form-data": s.CheckpointUploadSerializer},
        responses={200: s.CheckpointReportSerializer, **BODY_REFUSALS},
    )
    @action(detail=True, methods=["post"], url_path="model/checkpoint", url_name="model-checkpoint",
            parser_classes=[parsers.MultiPartParser, parsers.FormParser])
    def model_checkpoint(self, request, pk=None):
        project = _project(request, pk, roles=OWNER_ONLY)
        serializer = s.CheckpointUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(upload_checkpoint(project, serializer.validated_data["checkpoint"], by=request.user))


@csrf_exempt
def no_such_endpoint(request, path):
    """Any other URL under /api/: a JSON 404 like the API's own, not Django's HTML page (a path
    parameter the routes refuse, such as a project id that is not a number, ends here too)."""
    return JsonResponse(
        {"detail": "There is no such API endpoint or object. The endpoints are listed at /api/docs/."}, status=404
    )


def _settings_body(project):
    usage = class_usage(project)
    classes = [
        {"id": c.pk, "name": c.name, "hotkey": c.hotkey, "labels": usage[c.pk][0], "removable": not usage[c.pk][1]}
        for c in project.ordered_classes()
    ]
    return {
        **{field: getattr(project, field) for field in SETTINGS_FIELDS},
        "training_paused": project.training_paused,
        "model_generation": project.model_generation,
        "init_checkpoint": project.init_checkpoint_name or None,
        "classes": classes,
    }


def _live_labels():
    live = Annotation.objects.filter(undone=False, skipped=False).select_related("label", "annotator").order_by("id")
    return Prefetch("annotations", queryset=live, to_attr="live_labels")


def _filtered_annotations(project, query):
    annotations = Annotation.objects.filter(item__project=project)
    if not query["include_undone"]:
        annotations = annotations.filter(undone=False)
    if "annotator" in query:
        if not get_user_model().objects.filter(username=query["annotator"]).exists():
            raise Invalid(f"There is no user named {query['annotator']!r}.")
        annotations = annotations.filter(annotator__username=query["annotator"])
    if "label" in query:
        annotations = annotations.filter(label=find_class(project, query["label"]))
    if "source" in query:
        annotations = annotations.filter(source=query["source"])
    if "item" in query:
        annotations = annotations.filter(item_id=query["item"])
    return annotations.select_related("item", "label", "annotator").order_by("-created_at", "-id")


def _annotation(project, annotation_id):
    annotation = (
        Annotation.objects.filter(item__project=project, pk=int(annotation_id))
        .select_related("item", "label", "annotator")
        .prefetch_related(Prefetch("changes", queryset=AnnotationChange.objects.select_related("changed_by")))
        .first()
    )
    if annotation is None:
        raise NotFound(f"Annotation {annotation_id} is not in this project.")
    return annotation


def _version_context(project):
    state = TrainerState.objects.filter(project=project).only("current_version_id").first()
    return {
        "current_id": state.current_version_id if state else None,
        "accuracies": version_accuracies(project),
    }
