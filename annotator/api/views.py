"""The REST API: projects, members, image import, leasing, answers, statistics.

Every project-scoped request starts with `_project(request, pk, roles)`, which answers 404 to
outsiders and 403 to members whose role does not allow the verb. The work itself is one call
to annotator.services (or annotator.importing); refusals there become `{"detail": message}`
with their status (see exceptions.py).
"""
from django.db.models import OuterRef, Prefetch, Subquery
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, parsers, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import AnonRateThrottle
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator import services
from annotator.importing import import_uploads
from annotator.models import LabelClass, Membership, Project, Role

from . import serializers as s
from .exceptions import ServiceErrorsMixin

OWNER_ONLY = (Role.OWNER,)

ERROR = s.ErrorSerializer
NOT_FOUND = OpenApiResponse(ERROR, description="Not a member of this project (or no such project).")
FORBIDDEN = OpenApiResponse(ERROR, description="Not signed in, or the caller's role does not allow this.")
INVALID = OpenApiResponse(ERROR, description="Invalid request; the message says what to change.")
PROJECT_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The project's id.")


def _project(request, pk, roles=None):
    return services.get_project_for_user(request.user, pk, roles=roles)


class TokenAttemptThrottle(AnonRateThrottle):
    """Slows password guessing: AUTH_TOKEN_RATE attempts per client address."""

    scope = "auth-token"


@extend_schema(
    tags=["auth"],
    request=s.CredentialsSerializer,
    responses={
        200: s.TokenSerializer,
        400: OpenApiResponse(description="Wrong username or password."),
        429: OpenApiResponse(description="Too many attempts; wait and try again."),
    },
    auth=[],
)
class TokenView(ObtainAuthToken):
    """Exchange a username and password for an API token."""

    throttle_classes = [TokenAttemptThrottle]


@extend_schema_view(
    list=extend_schema(summary="The caller's projects", responses={200: s.ProjectSerializer(many=True), 403: FORBIDDEN}),
    create=extend_schema(
        summary="Create a project; the caller becomes its owner",
        request=s.ProjectCreateSerializer,
        responses={201: s.ProjectSerializer, 400: INVALID, 403: FORBIDDEN},
    ),
    retrieve=extend_schema(
        summary="One project, with the caller's role",
        parameters=[PROJECT_ID],
        responses={200: s.ProjectSerializer, 403: FORBIDDEN, 404: NOT_FOUND},
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
            services.projects_for_user(user)
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
        project = services.create_project(request.user, **serializer.validated_data)
        project = _project(request, project.pk)
        return Response(s.ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    # --- members ------------------------------------------------------------------------

    @extend_schema(
        methods=["GET"],
        summary="Members of the project with their roles",
        tags=["members"],
        parameters=[PROJECT_ID],
        responses={200: s.MembershipSerializer(many=True), 403: FORBIDDEN, 404: NOT_FOUND},
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
            400: INVALID,
            403: FORBIDDEN,
            404: NOT_FOUND,
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
        membership = services.add_member(project, **serializer.validated_data)
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
            400: INVALID,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    @action(detail=True, methods=["post"], parser_classes=[parsers.MultiPartParser, parsers.FormParser])
    def images(self, request, pk=None):
        project = _project(request, pk, roles=OWNER_ONLY)
        files = request.FILES.getlist("file")
        if not files:
            raise services.Invalid("Attach one or more images or zip archives in the multipart field 'file'.")
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
        request=s.LeaseQuerySerializer,
        responses={
            200: s.LeasedItemSerializer,
            204: OpenApiResponse(description="No item is available to the caller right now."),
            400: INVALID,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    @action(detail=True, methods=["post"], url_path="next", url_name="next")
    def next_item(self, request, pk=None):
        project = _project(request, pk, roles=services.LABELING_ROLES)
        serializer = s.LeaseQuerySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lease = services.lease_next(project, request.user, exclude=set(serializer.validated_data["exclude"]))
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.LeasedItemSerializer(lease, context={"request": request}).data)

    # --- answers ------------------------------------------------------------------------

    @extend_schema(
        summary="Answer an item: a class name, or a skip",
        tags=["labeling"],
        parameters=[PROJECT_ID],
        description=(
            "Exactly once per idempotency key: a retry with the same key and body returns the "
            "stored answer with 200."
        ),
        request=s.AnswerSerializer,
        responses={
            201: OpenApiResponse(s.AnnotationSerializer, description="The answer was stored."),
            200: OpenApiResponse(s.AnnotationSerializer, description="A retry: the answer stored earlier."),
            400: INVALID,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: OpenApiResponse(
                ERROR,
                description=(
                    "Not saved: the key was used for another answer, the caller already answered "
                    "the item, or the item was labeled by others after the caller's lease expired."
                ),
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def annotations(self, request, pk=None):
        project = _project(request, pk, roles=services.LABELING_ROLES)
        serializer = s.AnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = services.submit_annotation(
            project,
            request.user,
            item_id=data["item"],
            label=data.get("label"),
            skip=data["skip"],
            idempotency_key=data["idempotency_key"],
            duration_ms=data.get("duration_ms"),
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(s.AnnotationSerializer(result.annotation).data, status=code)

    @extend_schema(
        summary="Undo the caller's last answer in the project",
        tags=["labeling"],
        parameters=[PROJECT_ID],
        description="The item becomes the caller's current item again (served by /next/).",
        request=None,
        responses={200: s.AnnotationSerializer, 400: INVALID, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="annotations/undo", url_name="annotations-undo")
    def undo(self, request, pk=None):
        project = _project(request, pk, roles=services.LABELING_ROLES)
        annotation = services.undo_last(project, request.user)
        return Response(s.AnnotationSerializer(annotation).data)

    # --- statistics ---------------------------------------------------------------------

    @extend_schema(
        summary="Labeling progress",
        description="Counts of items, labeled and skipped items, labels per class and per annotator.",
        parameters=[PROJECT_ID],
        responses={200: s.StatsSerializer, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        return Response(services.project_stats(_project(request, pk)))
