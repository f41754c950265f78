"""The numbers of a project: labeling progress (/api/projects/<id>/stats/, every member) and
the dashboard (dashboard/, owners, reviewers and viewers)."""
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import DASHBOARD_ROLES
from annotator.api.permissions import ANY_MEMBER
from annotator.api.schema import FORBIDDEN, NOT_FOUND, NOT_SIGNED_IN, PROJECT_ID
from annotator.api.serializers.dashboard import DashboardSerializer, StatsSerializer
from annotator.api.viewsets import ProjectScopedViewSet
from annotator.dashboard import model_side
from annotator.dashboard.summary import dashboard_summary
from annotator.projects.selectors import project_stats


class DashboardViewSet(ProjectScopedViewSet):
    """Labeling progress and the dashboard's numbers."""

    roles = {"stats": ANY_MEMBER, "dashboard": DASHBOARD_ROLES}

    @extend_schema(
        summary="Labeling progress",
        description="Counts of items, labeled and skipped items, labels per class and per annotator.",
        parameters=[PROJECT_ID],
        responses={200: StatsSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        return Response(project_stats(self.project))

    @extend_schema(
        summary="The dashboard's numbers (owners, reviewers and viewers)",
        description=(
            "Progress, labels per class, annotators (labels, skips, median time, agreement), and the model: "
            "the learning curve (audit accuracy per number of labels with 95% intervals, cross-validated "
            "accuracy per version, fine-tuning runs), the unlabeled pool's uncertainty histogram, labeled "
            "against predicted class counts, the most confused class pairs and the suspect labels (labels "
            "the model, with them held out, confidently disagrees with). Aggregates only: fast on large pools."
        ),
        tags=["dashboard"],
        parameters=[PROJECT_ID],
        responses={200: DashboardSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="dashboard", url_name="dashboard")
    def dashboard(self, request, pk=None):
        summary = dashboard_summary(self.project)
        body = {
            **summary,
            "per_class": [{"name": name, "labels": n} for name, n in summary["per_class"]],
            "annotators": [{k: v for k, v in row.items()} for row in summary["annotators"]],
            "fields": model_side.fields(summary["model"]),
        }
        return Response(body)
