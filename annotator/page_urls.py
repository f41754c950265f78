"""URLs of the HTML pages (the API lives under api/, images under projects/<pk>/items/)."""
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from . import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="project-list", permanent=False), name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("projects/", views.project_list, name="project-list"),
    path("projects/new/", views.project_create, name="project-create"),
    path("projects/<int:pk>/", views.project_detail, name="project-detail"),
    path("projects/<int:pk>/members/", views.project_members, name="project-members"),
    path("projects/<int:pk>/import/", views.project_import, name="project-import"),
    path("projects/<int:pk>/label/", views.label, name="label"),
    path("projects/<int:pk>/label/next/", views.label_next, name="label-next"),
    path("projects/<int:pk>/label/answer/", views.label_answer, name="label-answer"),
    path("projects/<int:pk>/label/undo/", views.label_undo, name="label-undo"),
]
