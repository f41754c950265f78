"""URLs of the HTML pages, the member-checked images and the browser's export download (the
API lives under api/)."""
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from annotator.pages import account, dashboard, export, jobs, labeling, media, members, projects, settings

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
    path("accounts/", account.account, name="account"),
    path("accounts/tokens/<int:token_pk>/revoke/", account.token_revoke, name="token-revoke"),
    path("projects/", projects.project_list, name="project-list"),
    path("projects/new/", projects.project_create, name="project-create"),
    path("projects/<int:pk>/", projects.project_detail, name="project-detail"),
    path("projects/<int:pk>/members/", projects.project_members, name="project-members"),
    path("projects/<int:pk>/members/<int:member_pk>/role/", members.member_role, name="member-role"),
    path("projects/<int:pk>/members/<int:member_pk>/remove/", members.member_remove, name="member-remove"),
    path("projects/<int:pk>/import/", projects.project_import, name="project-import"),
    path("projects/<int:pk>/settings/", settings.project_settings, name="project-settings"),
    path("projects/<int:pk>/settings/classes/", settings.class_add, name="class-add"),
    path("projects/<int:pk>/settings/classes/<int:class_pk>/rename/", settings.class_rename, name="class-rename"),
    path("projects/<int:pk>/settings/classes/<int:class_pk>/move/", settings.class_move, name="class-move"),
    path("projects/<int:pk>/settings/classes/<int:class_pk>/remove/", settings.class_remove, name="class-remove"),
    path("projects/<int:pk>/labels/import/", settings.label_import, name="label-import"),
    path("projects/<int:pk>/model/pause/", settings.model_pause, name="model-pause"),
    path("projects/<int:pk>/model/reset/", settings.model_reset, name="model-reset"),
    path("projects/<int:pk>/model/checkpoint/", settings.model_checkpoint, name="model-checkpoint"),
    path("projects/<int:pk>/model/encoder/", settings.model_encoder, name="model-encoder"),
    path("projects/<int:pk>/items/<int:item_pk>/review/", dashboard.item_review, name="item-review"),
    path("projects/<int:pk>/status/", labeling.project_status, name="project-status"),
    path("projects/<int:pk>/dashboard/", dashboard.project_dashboard, name="project-dashboard"),
    path("projects/<int:pk>/label/", labeling.label, name="label"),
    path("projects/<int:pk>/label/next/", labeling.label_next, name="label-next"),
    path("projects/<int:pk>/label/answer/", labeling.label_answer, name="label-answer"),
    path("projects/<int:pk>/label/undo/", labeling.label_undo, name="label-undo"),
    path("projects/<int:pk>/items/<int:item_pk>/image/", media.item_image, name="item-image"),
    path("projects/<int:pk>/export/", export.project_export, name="project-export"),
    path("projects/<int:pk>/jobs/", jobs.project_jobs, name="project-jobs"),
    path("projects/<int:pk>/jobs/export/", jobs.export_job, name="project-export-job"),
    path("projects/<int:pk>/jobs/<int:job_id>/download/", jobs.job_download, name="project-job-download"),
]
