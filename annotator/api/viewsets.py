"""What the viewsets under /api/projects/<id>/ share: refusals as `{"detail": message}`,
digits for ids, sign-in and ProjectRole (see permissions.py), and the page size of lists."""
from rest_framework import viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated

from annotator.api.exceptions import ServiceErrorsMixin
from annotator.api.permissions import ProjectRole
from annotator.api.serializers.projects import ProjectSerializer
from annotator.models import Project


class Pages(PageNumberPagination):
    """`?page=` and `?page_size=` (at most 500)."""

    page_size_query_param = "page_size"
    max_page_size = 500


class ProjectScopedViewSet(ServiceErrorsMixin, viewsets.GenericViewSet):
    """Subclasses set `roles` (action name -> roles, see permissions.py); actions read the
    project from `self.project`."""

    permission_classes = [IsAuthenticated, ProjectRole]
    lookup_value_regex = r"\d+"
    roles = {}
    # For DRF's own pages (OPTIONS and the browsable API), which ask every view for them: the
    # project behind {id}. The actions name their own serializers and use self.project.
    queryset = Project.objects.none()
    serializer_class = ProjectSerializer
