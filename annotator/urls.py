from django.contrib import admin
from django.urls import include, path

from annotator.api import export as api_export
from annotator.operations import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    # Before the api/ include: a streamed download, not a router view (annotator/api/export.py says why).
    path("api/projects/<int:pk>/export/", api_export.ProjectExportView.as_view(), name="api-project-export"),
    path("api/", include("annotator.api.urls")),
    path("", include("annotator.pages.urls")),
]
