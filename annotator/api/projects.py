"""/api/projects/ and /api/projects/<id>/: the caller's projects, creating one, and one project
with the caller's role."""
from django.db.models import OuterRef, Prefetch, Subquery
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.response import Response

from annotator.access import project_for, projects_for_user
from annotator.api.permissions import ANY_MEMBER
from annotator.api.schema import FORBIDDEN, INVALID, NO_PAGE, NOT_FOUND, NOT_SIGNED_IN, PROJECT_ID, UNSUPPORTED
from annotator.api.serializers.projects import ProjectCreateSerializer, ProjectSerializer
from annotator.api.viewsets import ProjectScopedViewSet
from annotator.models import LabelClass, Membership, Project
from annotator.projects.changes import create_project


@extend_schema_view(
    list=extend_schema(
        summary="The caller's projects",
        responses={200: ProjectSerializer(many=True), 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NO_PAGE},
    ),
    create=extend_schema(
        summary="Create a project; the caller becomes its owner",
        request=ProjectCreateSerializer,
        responses={201: ProjectSerializer, 400: INVALID, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 415: UNSUPPORTED},
    ),
    retrieve=extend_schema(
        summary="One project, with the caller's role",
        parameters=[PROJECT_ID],
        responses={200: ProjectSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    ),
)
class ProjectViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Projects the caller is a member of, and what members do in them."""

    roles = {"retrieve": ANY_MEMBER}

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
        # Membership decides (ProjectRole): outsiders get 404, whatever the project exists or not.
        return self.project

    def get_serializer_class(self):
        return ProjectCreateSerializer if self.action == "create" else ProjectSerializer

    def create(self, request, *args, **kwargs):
        serializer = ProjectCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = create_project(request.user, **serializer.validated_data)
        project = project_for(request.user, project.pk)  # with the caller's role
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)
