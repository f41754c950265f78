"""URLs of the HTML pages (the API lives under api/, images under projects/<pk>/items/)."""
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from annotator.pages.dashboard import item_review, project_dashboard
from annotator.pages.labeling import label, label_answer, label_next, label_undo, project_status
from annotator.pages.members import member_remove, member_role
from annotator.pages.projects import project_create, project_detail, project_import, project_list, project_members
from annotator.pages.settings import (
    class_add,
    class_move,
    class_remove,
    class_rename,
    label_import,
    model_checkpoint,
    model_pause,
    model_reset,
    project_settings,
)

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
    path("projects/", project_list, name="project-list"),
    path("projects/new/", project_create, name="project-create"),
    path("projects/<int:pk>/", project_detail, name="project-detail"),
    path("projects/<int:pk>/members/", project_members, name="project-members"),
    path("projects/<int:pk>/members/<int:member_pk>/role/", member_role, name="member-role"),
    path("projects/<int:pk>/members/<int:member_pk>/remove/", member_remove, name="member-remove"),
    path("projects/<int:pk>/import/", project_import, name="project-import"),
    path("projects/<int:pk>/settings/", project_settings, name="project-settings"),
    path("projects/<int:pk>/settings/classes/", class_add, name="class-add"),
    path("projects/<int:pk>/settings/classes/<int:class_pk>/rename/", class_rename, name="class-rename"),
    path("projects/<int:pk>/settings/classes/<int:class_pk>/move/", class_move, name="class-move"),
    path("projects/<int:pk>/settings/classes/<int:class_pk>/remove/", class_remove, name="class-remove"),
    path("projects/<int:pk>/labels/import/", label_import, name="label-import"),
    path("projects/<int:pk>/model/pause/", model_pause, name="model-pause"),
    path("projects/<int:pk>/model/reset/", model_reset, name="model-reset"),
    path("projects/<int:pk>/model/checkpoint/", model_checkpoint, name="model-checkpoint"),
    path("projects/<int:pk>/items/<int:item_pk>/review/", item_review, name="item-review"),
    path("projects/<int:pk>/status/", project_status, name="project-status"),
    path("projects/<int:pk>/dashboard/", project_dashboard, name="project-dashboard"),
    path("projects/<int:pk>/label/", label, name="label"),
    path("projects/<int:pk>/label/next/", label_next, name="label-next"),
    path("projects/<int:pk>/label/answer/", label_answer, name="label-answer"),
    path("projects/<int:pk>/label/undo/", label_undo, name="label-undo"),
]
