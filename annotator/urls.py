from django.contrib import admin
from django.urls import include, path

from . import media_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("annotator.api.urls")),
    path("projects/<int:pk>/items/<int:item_pk>/image/", media_views.item_image, name="item-image"),
    path("", include("annotator.page_urls")),
]
