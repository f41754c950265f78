"""URLs under /api/ (namespace "api"): the token, the encoders, the projects and everything
under them (one viewset per resource), schema and docs (for signed-in users), and a JSON 404 for every other path
that ends with a slash (paths without one still get APPEND_SLASH's redirect first)."""
from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated
from rest_framework.routers import SimpleRouter

from annotator.api import (
    annotations,
    bulk,
    dashboard,
    imports,
    instructions,
    items,
    jobs,
    leasing,
    members,
    model,
    project_settings,
    projects,
    review,
)
from annotator.api.auth import TokenDetailView, TokenListView, TokenView
from annotator.api.encoders import EncoderListView

app_name = "api"


class SharedBasenameRouter(SimpleRouter):
    """A SimpleRouter that lets several viewsets share one basename.

    Every viewset under `projects` is registered with basename "project", so the URL names
    stay "project-detail", "project-members", "project-next"... whichever viewset serves
    them. SimpleRouter refuses a basename twice; here it may repeat. Two viewsets must not
    serve the same path (the first registered would answer every method): each resource's
    paths live in one viewset.
    """

    def is_already_registered(self, new_basename):
        return False


router = SharedBasenameRouter()
for viewset in (
    projects.ProjectViewSet,
    members.MemberViewSet,
    imports.ImportViewSet,
    leasing.LeaseViewSet,
    annotations.AnnotationViewSet,
    bulk.BulkViewSet,
    items.ItemViewSet,
    project_settings.SettingsViewSet,
    instructions.InstructionsViewSet,
    model.ModelViewSet,
    dashboard.DashboardViewSet,
    review.ReviewViewSet,
    jobs.JobViewSet,
):
    router.register("projects", viewset, basename="project")


@csrf_exempt
def no_such_endpoint(request, path):
    """Any other URL under /api/: a JSON 404 like the API's own, not Django's HTML page (a path
    parameter the routes refuse, such as a project id that is not a number, ends here too)."""
    return JsonResponse(
        {"detail": "There is no such API endpoint or object. The endpoints are listed at /api/docs/."}, status=404
    )


urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="token"),
    path("tokens/", TokenListView.as_view(), name="tokens"),
    path("tokens/<int:token_id>/", TokenDetailView.as_view(), name="token-detail"),
    # Signed-in users only (a token or the session): the schema maps every endpoint.
    path("schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="schema"),
    # Swagger UI: its script from a URL (the split view), not inline; its page keeps one inline
    # <style>, so this page alone may use inline styles (annotator/settings.py has the policy).
    path("docs/", login_required(csp_update({"style-src": [UNSAFE_INLINE]})(
        SpectacularSwaggerSplitView.as_view(url_name="api:schema"))), name="docs"),
    path("encoders/", EncoderListView.as_view(), name="encoders"),
    *router.urls,
    re_path(r"^(?P<path>[\s\S]*/)$", no_such_endpoint, name="no-such-endpoint"),
]
