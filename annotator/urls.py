from django.contrib import admin
from django.urls import include, path

from . import export_views, media_views

urlpatterns = [
    path("admin/", admin.site.urls),
    # Before the api/ include: a streamed download, not a router view (export_views.py says why).
    path("api/projects/<int:pk>/export/", export_views.ProjectExportView.as_view(), name="api-project-export"),
    path("api/", include("annotator.api.urls")),
    path("projects/<int:pk>/items/<int:item_pk>/image/", media_views.item_image, name="item-image"),
    path("projects/<int:pk>/export/", export_views.project_export, name="project-export"),
    path("", include("annotator.page_urls")),
]
