"""The project pages: the list, creating a project, and a project's overview (members,
image import).

Every page view starts with `access.project_for(request.user, pk, roles=...)`, which 404s
outsiders and turns a wrong role into the 403 page with its sentence.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, Q, Subquery
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotator.access import (
    LABELING_ROLES,
    OWNER_ROLES,
    OWNERS_ONLY,
    REVIEW_ROLES,
    ServiceError,
    project_for,
    projects_for_user,
)
from annotator.importing import bucket, images
from annotator.jobs.bucket import start_bucket_import
from annotator.jobs.imports import start_import, wants_job
from annotator.modelloop.status import trainer_status
from annotator.models import Membership, Role
from annotator.pages.forms import MemberForm, ProjectForm
from annotator.pages.jobs import jobs_context
from annotator.pages.members import back_to, members_context, render_members
from annotator.pages.settings import render_settings
from annotator.projects.changes import create_project, creation_refusal
from annotator.projects.members import add_member
from annotator.projects.selectors import project_stats

# --- projects ------------------------------------------------------------------------------


@login_required
def project_list(request):
    role = Membership.objects.filter(project=OuterRef("pk"), user=request.user).values("role")[:1]
    projects = projects_for_user(request.user).annotate(
        role=Subquery(role),
        item_count=Count("items", distinct=True),
        labeled_count=Count("items", filter=Q(items__label_count__gt=0), distinct=True),
    )
    return render(request, "annotator/project_list.html", {"projects": projects})


@login_required
def project_create(request):
    form = ProjectForm(request.POST or None)
    refusal = creation_refusal(request.user)
    if refusal:
        return render(request, "annotator/project_form.html", {"refusal": refusal}, status=403)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            project = create_project(
                request.user, name=data["name"], classes=data["classes"], **form.project_options()
            )
        except ServiceError as exc:
            form.add_error(None, exc.message)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, f"Project “{project.name}” is ready. Import images to start labeling.")
            return redirect(project)
    return render(request, "annotator/project_form.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def project_detail(request, pk):
    project = project_for(request.user, pk)
    return _render_detail(request, project)


@login_required
@require_POST
def project_members(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    form = MemberForm(request.POST)
    notice = None
    if form.is_valid():
        username, role = form.cleaned_data["username"].strip(), form.cleaned_data["role"]
        try:
            add_member(project, username, role)
        except ServiceError as exc:
            form.add_error("username", exc.message)
        else:
            notice = f"{username} is now {Role(role).label.lower()} of this project."
            if not request.htmx:
                messages.success(request, notice)
                return redirect(back_to(request, project))
            form = MemberForm()
    if request.htmx:
        return render_members(request, project, member_form=form, member_notice=notice)
    if request.POST.get("back") == "settings":
        return render_settings(request, project, member_form=form)
    return _render_detail(request, project, member_form=form)


@login_required
@require_POST
def project_import(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    files = request.FILES.getlist("file")
    report, error = None, None
    if not files:
        error = "Choose one or more image files or a zip of images, then press Import."
    elif wants_job(files):  # large: saved now, imported by the task worker (the jobs region shows it)
        job = start_import(project, files, user=request.user)
        return _render_detail(request, project, partial="import-result", import_job=job, **jobs_context(project))
    else:
        try:
            report = images.import_uploads(project, files, user=request.user).as_dict()
        except ServiceError as exc:
            error = exc.message
    return _render_detail(request, project, partial="import-result", import_report=report, import_error=error)


@login_required
@require_POST
def project_bucket_import(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    url = request.POST.get("url", "").strip()
    job, error = None, None
    try:  # listing and checking a prefix can take long: the task worker does it (the jobs region shows it)
        job = start_bucket_import(project, url or bucket.saved_source(project), user=request.user)
    except ServiceError as exc:
        error = exc.message
    return _render_detail(request, project, partial="bucket-result", bucket_job=job, bucket_error=error,
                          bucket_url=url, **jobs_context(project))


def _render_detail(request, project, *, partial=None, **extra):
    """The overview page, or one of its regions for an htmx request. Form errors give a 400
    on a full page; htmx gets 200 so that it swaps the region showing them."""
    stats = project_stats(project)
    is_owner = project.current_role == Role.OWNER
    top = max(stats["per_class"].values(), default=0)
    context = {
        "project": project,
        "stats": stats,
        "class_rows": [
            {"name": name, "count": n, "percent": round(100 * n / top) if top else 0}
            for name, n in stats["per_class"].items()
        ],
        "annotator_rows": sorted(stats["per_annotator"].items(), key=lambda row: (-row[1], row[0])),
        "percent_labeled": round(100 * stats["labeled"] / stats["items"]) if stats["items"] else 0,
        "can_label": project.current_role in LABELING_ROLES,
        "can_review": project.current_role in REVIEW_ROLES,
        "is_owner": is_owner,
        "trainer_status": trainer_status(project),
        **(members_context(project) if is_owner else {}),
        **(jobs_context(project) if is_owner else {}),
        **extra,
    }
    form = context.get("member_form")
    failed = bool((form and form.errors) or context.get("import_error") or context.get("bucket_error"))
    template = "annotator/project_detail.html"
    if request.htmx and partial:
        return render(request, f"{template}#{partial}", context)
    return render(request, template, context, status=400 if failed else 200)


# --- members (shared by the overview and the settings page) ------------------------------


# --- settings ------------------------------------------------------------------------------


# --- steering the model (settings page) and reviewing suspect labels (dashboard) -----------------


# --- labeling ------------------------------------------------------------------------------


# --- dashboard -----------------------------------------------------------------------------


