"""URLs under /api/ (namespace "api"): token, projects and their verbs, schema and docs, and
a JSON 404 for every other path that ends with a slash (paths without one still get
APPEND_SLASH's redirect first)."""
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from annotator.api import views

app_name = "api"

router = SimpleRouter()
router.register("projects", views.ProjectViewSet, basename="project")

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    *router.urls,
    re_path(r"^(?P<path>[\s\S]*/)$", views.no_such_endpoint, name="no-such-endpoint"),
]
