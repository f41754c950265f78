from django.contrib import admin
from django.urls import include, path

from annotator.api import export as api_export
from annotator.pages import export, media

urlpatterns = [
    path("admin/", admin.site.urls),
    # Before the api/ include: a streamed download, not a router view (annotator/api/export.py says why).
    path("api/projects/<int:pk>/export/", api_export.ProjectExportView.as_view(), name="api-project-export"),
    path("api/", include("annotator.api.urls")),
    path("projects/<int:pk>/items/<int:item_pk>/image/", media.item_image, name="item-image"),
    path("projects/<int:pk>/export/", export.project_export, name="project-export"),
    path("", include("annotator.pages.urls")),
]
