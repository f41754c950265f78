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
    path("projects/<int:pk>/members/<int:member_pk>/role/", views.member_role, name="member-role"),
    path("projects/<int:pk>/members/<int:member_pk>/remove/", views.member_remove, name="member-remove"),
    path("projects/<int:pk>/import/", views.project_import, name="project-import"),
    path("projects/<int:pk>/settings/", views.project_settings, name="project-settings"),
    path("projects/<int:pk>/settings/classes/", views.class_add, name="class-add"),
    path("projects/<int:pk>/settings/classes/<int:class_pk>/rename/", views.class_rename, name="class-rename"),
    path("projects/<int:pk>/settings/classes/<int:class_pk>/move/", views.class_move, name="class-move"),
    path("projects/<int:pk>/settings/classes/<int:class_pk>/remove/", views.class_remove, name="class-remove"),
    path("projects/<int:pk>/labels/import/", views.label_import, name="label-import"),
    path("projects/<int:pk>/model/pause/", views.model_pause, name="model-pause"),
    path("projects/<int:pk>/model/reset/", views.model_reset, name="model-reset"),
    path("projects/<int:pk>/model/checkpoint/", views.model_checkpoint, name="model-checkpoint"),
    path("projects/<int:pk>/items/<int:item_pk>/review/", views.item_review, name="item-review"),
    path("projects/<int:pk>/status/", views.project_status, name="project-status"),
    path("projects/<int:pk>/dashboard/", views.project_dashboard, name="project-dashboard"),
    path("projects/<int:pk>/label/", views.label, name="label"),
    path("projects/<int:pk>/label/next/", views.label_next, name="label-next"),
    path("projects/<int:pk>/label/answer/", views.label_answer, name="label-answer"),
    path("projects/<int:pk>/label/undo/", views.label_undo, name="label-undo"),
]
