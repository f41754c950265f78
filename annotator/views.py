"""The HTML pages: project list and creation, project overview (members, import), project
settings (classes, members, label import), labeling.

Every view starts with `_project_for(request, pk, roles=...)`, which 404s outsiders and turns
a wrong role into a 403 page. The labeling page holds two leases (the current item and a
prefetched one); static/js/label.js swaps to the prefetched image at once and talks to the
label-next / label-answer / label-undo endpoints here in the background. Those endpoints
answer JSON to the script (Accept: application/json) and redirect back to the page for a
plain form post, so labeling also works without JavaScript.
"""
import uuid
import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from . import dashboard, importing, services, steering
from .forms import ClassForm, LabelImportForm, MemberForm, ProjectForm, SettingsForm
from .models import Annotation, Item, Membership, Role

VIEWER_CANNOT_LABEL = "Viewers cannot label in this project. Ask a project owner to make you an annotator."
OWNERS_ONLY = "Only project owners can do this. Ask an owner of this project."
MAX_DURATION_MS = 24 * 3600 * 1000


def _project_for(request, pk, *, roles=None, refusal=OWNERS_ONLY):
    try:
        return services.get_project_for_user(request.user, pk, roles=roles)
    except services.Forbidden as exc:
        raise PermissionDenied(refusal) from exc


# --- projects ------------------------------------------------------------------------------


@login_required
def project_list(request):
    role = Membership.objects.filter(project=OuterRef("pk"), user=request.user).values("role")[:1]
    projects = services.projects_for_user(request.user).annotate(
        role=Subquery(role),
        item_count=Count("items", distinct=True),
        labeled_count=Count("items", filter=Q(items__label_count__gt=0), distinct=True),
    )
    return render(request, "annotator/project_list.html", {"projects": projects})


@login_required
def project_create(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            project = services.create_project(
                request.user, name=data["name"], classes=data["classes"], **form.project_options()
            )
        except services.ServiceError as exc:
            form.add_error(None, exc.message)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, f"Project “{project.name}” is ready. Import images to start labeling.")
            return redirect(project)
    return render(request, "annotator/project_form.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def project_detail(request, pk):
    project = _project_for(request, pk)
    return _render_detail(request, project)


@login_required
@require_POST
def project_members(request, pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    form = MemberForm(request.POST)
    notice = None
    if form.is_valid():
        username, role = form.cleaned_data["username"].strip(), form.cleaned_data["role"]
        try:
            services.add_member(project, username, role)
        except services.ServiceError as exc:
            form.add_error("username", exc.message)
        else:
            notice = f"{username} is now {Role(role).label.lower()} of this project."
            if not request.htmx:
                messages.success(request, notice)
                return redirect(_back_to(request, project))
            form = MemberForm()
    if request.htmx:
        return _render_members(request, project, member_form=form, member_notice=notice)
    if request.POST.get("back") == "settings":
        return _render_settings(request, project, member_form=form)
    return _render_detail(request, project, member_form=form)


@login_required
@require_POST
def project_import(request, pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    files = request.FILES.getlist("file")
    report, error = None, None
    if not files:
        error = "Choose one or more image files or a zip of images, then press Import."
    else:
        try:
            report = importing.import_uploads(project, files, user=request.user).as_dict()
        except services.ServiceError as exc:
            error = exc.message
    return _render_detail(request, project, partial="import-result", import_report=report, import_error=error)


def _render_detail(request, project, *, partial=None, **extra):
    """The overview page, or one of its regions for an htmx request. Form errors give a 400
    on a full page; htmx gets 200 so that it swaps the region showing them."""
    stats = services.project_stats(project)
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
        "can_label": project.current_role in services.LABELING_ROLES,
        "is_owner": is_owner,
        "trainer_status": services.trainer_status(project),
        **(_members_context(project) if is_owner else {}),
        **extra,
    }
    form = context.get("member_form")
    failed = bool((form and form.errors) or context.get("import_error"))
    template = "annotator/project_detail.html"
    if request.htmx and partial:
        return render(request, f"{template}#{partial}", context)
    return render(request, template, context, status=400 if failed else 200)


# --- members (shared by the overview and the settings page) ------------------------------


def _members_context(project):
    return {
        "members": project.memberships.select_related("user").order_by("user__username"),
        "roles": Role.choices,
        "member_form": MemberForm(),
    }


def _render_members(request, project, **extra):
    context = {
        "project": project,
        "is_owner": project.current_role == Role.OWNER,
        "back": request.POST.get("back", ""),
        **_members_context(project),
        **extra,
    }
    return render(request, "annotator/_members.html", context)


def _back_to(request, project):
    """Where a member form posted without JavaScript returns: the page it came from."""
    if request.POST.get("back") == "settings":
        return reverse("project-settings", args=[project.pk])
    return project.get_absolute_url()


def _member_change(request, project, change, notice):
    """Apply `change` (a services call) and answer with the members section (htmx) or a
    redirect back with a message."""
    error = None
    try:
        change()
    except services.ServiceError as exc:
        error, notice = exc.message, None
    else:
        project.current_role = project.role_of(request.user)  # the caller may have changed their own role
    if project.current_role is None:  # the caller left the project
        messages.success(request, notice)
        url = reverse("project-list")
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    if request.htmx:
        return _render_members(request, project, member_notice=notice, member_error=error)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect(_back_to(request, project))


@login_required
@require_POST
def member_role(request, pk, member_pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    membership = get_object_or_404(project.memberships.select_related("user"), pk=member_pk)
    username, role = membership.user.get_username(), request.POST.get("role", "")
    change = functools.partial(services.change_role, project, username, role)
    return _member_change(request, project, change, f"{username} is now {role} of this project.")


@login_required
@require_POST
def member_remove(request, pk, member_pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    membership = get_object_or_404(project.memberships.select_related("user"), pk=member_pk)
    username = membership.user.get_username()
    change = functools.partial(services.remove_member, project, username)
    notice = f"{username} is no longer a member of this project; their answers stay."
    return _member_change(request, project, change, notice)


# --- settings ------------------------------------------------------------------------------


@login_required
def project_settings(request, pk):
    """Every member reads the settings; owners change them."""
    project = _project_for(request, pk, roles=[Role.OWNER] if request.method == "POST" else None)
    form = SettingsForm.for_project(project, request.POST if request.method == "POST" else None)
    notice = None
    if request.method == "POST" and form.is_valid():
        try:
            services.update_settings(project, **form.settings())
        except services.ServiceError as exc:
            form.add_error(None, exc.message)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            if not request.htmx:
                messages.success(request, "Settings saved.")
                return redirect("project-settings", pk=project.pk)
            notice = "Settings saved."
        if form.errors:
            project.refresh_from_db()
    return _render_settings(request, project, partial="settings-form", settings_form=form, settings_notice=notice)


@login_required
@require_POST
def class_add(request, pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    form = ClassForm(request.POST)
    if not form.is_valid():
        return _render_classes(request, project, "Type the new class's name (at most 100 characters).")
    name = form.cleaned_data["name"].strip()
    change = functools.partial(services.add_class, project, name)
    return _change_classes(request, project, change, f"Added the class “{name}”.")


@login_required
@require_POST
def class_rename(request, pk, class_pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    form = ClassForm(request.POST)
    if not form.is_valid():
        return _render_classes(request, project, "Type the class's new name (at most 100 characters).")
    name = form.cleaned_data["name"].strip()
    change = functools.partial(services.rename_class, project, class_pk, name)
    return _change_classes(request, project, change, f"Renamed the class to “{name}”.")


@login_required
@require_POST
def class_move(request, pk, class_pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    offset = {"up": -1, "down": 1}.get(request.POST.get("direction"))
    if offset is None:
        return _render_classes(request, project, "Move a class up or down.")
    change = functools.partial(services.move_class, project, class_pk, offset)
    return _change_classes(request, project, change, None)


@login_required
@require_POST
def class_remove(request, pk, class_pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    change = functools.partial(services.remove_class, project, class_pk)
    return _change_classes(request, project, change, "Removed the class.")


def _change_classes(request, project, change, notice):
    try:
        change()
    except services.NotFound as exc:
        raise Http404(exc.message) from exc
    except services.ServiceError as exc:
        return _render_classes(request, project, exc.message)
    if not request.htmx:
        if notice:
            messages.success(request, notice)
        return redirect("project-settings", pk=project.pk)
    return _render_settings(request, project, partial="classes", class_notice=notice)


def _render_classes(request, project, error):
    return _render_settings(request, project, partial="classes", class_error=error)


@login_required
@require_POST
def label_import(request, pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    form = LabelImportForm(request.POST, request.FILES)
    report, error = None, None
    if not form.is_valid():
        error = "Choose a CSV file with the header file,class, then press Import labels."
    else:
        try:
            report = services.import_labels(project, request.user, form.cleaned_data["file"])
        except services.ServiceError as exc:
            error = exc.message
    return _render_settings(request, project, partial="label-import-result", label_report=report, label_error=error)


LABEL_ROWS_SHOWN = 200


# --- steering the model (settings page) and reviewing suspect labels (dashboard) -----------------


def _model_change(request, project, change, notice):
    """Run an owner's change to the model loop; answer with the settings page's Model region
    (htmx), its notice or the refusal's reason in it, or else a redirect to that region with
    the same text as a message."""
    error = None
    try:
        result = change()
    except services.ServiceError as exc:
        error = exc.message
    else:
        notice = notice(result) if callable(notice) else notice
    project.refresh_from_db()
    if not request.htmx:
        (messages.error if error else messages.success)(request, error or notice)
        return redirect(reverse("project-settings", args=[project.pk]) + "#model")
    return _render_settings(request, project, partial="model", model_notice=None if error else notice,
                            model_error=error)


@login_required
@require_POST
def model_pause(request, pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    paused = request.POST.get("paused") in {"1", "true", "on"}
    return _model_change(request, project, lambda: steering.set_paused(project, paused),
                         "Training paused." if paused else "Training resumed.")


@login_required
@require_POST
def model_reset(request, pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    clear = request.POST.get("clear_checkpoint") in {"1", "true", "on"}
    return _model_change(request, project, lambda: steering.reset_model(project, by=request.user, clear_checkpoint=clear),
                         "The model was reset; the trainer starts over.")


@login_required
@require_POST
def model_checkpoint(request, pk):
    project = _project_for(request, pk, roles=[Role.OWNER])
    upload = request.FILES.get("checkpoint")

    def change():
        if upload is None:
            raise services.Invalid("Choose a checkpoint file (.pt) to upload.")
        return steering.upload_checkpoint(project, upload, by=request.user)

    def notice(report):
        return (f"Loaded {report['name']}: {report['matched']} of {report['total']} encoder tensors fit "
                f"({report['architecture']}). The model starts over from it.")

    return _model_change(request, project, change, notice)


@login_required
@require_POST
def item_review(request, pk, item_pk):
    """Keep or relabel a suspect label from the dashboard (owners)."""
    project = _project_for(request, pk, roles=[Role.OWNER])
    # A button sends `label` (empty: keep); the drop-down of the other classes sends `other`.
    label = (request.POST.get("other") or request.POST.get("label") or "").strip() or None
    try:
        result = steering.review_item(project, item_pk, by=request.user, label=label)
    except services.NotFound as exc:
        raise Http404(exc.message) from exc
    except services.ServiceError as exc:
        if request.htmx:
            return render(request, "annotator/project_dashboard.html#suspect-done",
                          {"error": exc.message, "item_pk": item_pk}, status=200)
        messages.error(request, exc.message)
        return redirect(reverse("project-dashboard", args=[project.pk]) + "#dash-suspects")
    done = (f"Relabeled as {result['label']} ({result['changed']} label{'s' if result['changed'] != 1 else ''} "
            "changed)." if result["label"] else "Kept as labeled.")
    if request.htmx:
        return render(request, "annotator/project_dashboard.html#suspect-done", {"notice": done, "item_pk": item_pk})
    messages.success(request, done)
    return redirect(reverse("project-dashboard", args=[project.pk]) + "#dash-suspects")


def _render_settings(request, project, *, partial=None, **extra):
    """The settings page, or one of its regions for an htmx request (200, so htmx swaps the
    region with its errors); a full page with an error answers 400."""
    is_owner = project.current_role == Role.OWNER
    usage = services.class_usage(project)
    report = extra.get("label_report")
    context = {
        "project": project,
        "is_owner": is_owner,
        "settings_form": SettingsForm.for_project(project),
        "class_rows": [
            {"label": c, "labels": usage[c.pk][0], "removable": not usage[c.pk][1]} for c in project.ordered_classes()
        ],
        "label_problems": [r for r in report["rows"] if r["status"] != "imported"][:LABEL_ROWS_SHOWN] if report else (),
        "label_rows_shown": LABEL_ROWS_SHOWN,
        "trainer_status": services.trainer_status(project),
        "checkpoint_max_mb": settings.CHECKPOINT_UPLOAD_MAX_MB,
        **_members_context(project),
        **extra,
    }
    template = "annotator/project_settings.html"
    if request.htmx and partial:
        return render(request, f"{template}#{partial}", context)
    forms_failed = context["settings_form"].errors or context["member_form"].errors
    failed = forms_failed or context.get("class_error") or context.get("label_error")
    return render(request, template, context, status=400 if failed else 200)


# --- labeling ------------------------------------------------------------------------------


@login_required
def label(request, pk):
    project = _project_for(request, pk, roles=services.LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    current = services.lease_next(project, request.user)
    prefetched = services.lease_next(project, request.user, exclude=[current.item_id]) if current else None
    current_json = _lease_json(current, request.user)
    state = {
        "current": current_json,
        "next": _lease_json(prefetched, request.user),
        "progress": _progress(project, request.user),
    }
    context = {
        "project": project,
        "classes": project.ordered_classes(),
        "current": current_json,
        "state": state,
        "answer_key": uuid.uuid4().hex,  # for the plain form post; the script makes its own
        "has_items": state["progress"]["total"] > 0,
        "is_owner": project.current_role == Role.OWNER,
        "trainer_status": services.trainer_status(project),
    }
    return render(request, "annotator/label.html", context)


@login_required
@require_POST
def label_next(request, pk):
    project = _project_for(request, pk, roles=services.LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    return _label_reply(request, project)


@login_required
@require_POST
def label_answer(request, pk):
    project = _project_for(request, pk, roles=services.LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    data = request.POST
    item_id = _int_or_none(data.get("item"))
    duration_ms = _int_or_none(data.get("duration_ms"))
    if duration_ms is not None and not 0 <= duration_ms <= MAX_DURATION_MS:
        duration_ms = None
    try:
        if item_id is None:
            raise services.Invalid("The answer names no item. Reload the page and answer again.")
        result = services.submit_annotation(
            project,
            request.user,
            item_id=item_id,
            label=data.get("label") or None,
            skip=data.get("skip") in {"1", "true", "on"},
            idempotency_key=data.get("idempotency_key", ""),
            duration_ms=duration_ms,
        )
    except services.ServiceError as exc:
        return _label_reply(request, project, status=exc.status, error=exc.message, item=item_id)
    return _label_reply(request, project, saved=_answer_json(result.annotation), replayed=not result.created)


@login_required
@require_POST
def label_undo(request, pk):
    project = _project_for(request, pk, roles=services.LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    try:
        undone = services.undo_last(project, request.user)
    except services.ServiceError as exc:
        return _label_reply(request, project, status=exc.status, error=exc.message)
    # The undone item is now the user's only lease, so lease_next returns it first.
    current = services.lease_next(project, request.user)
    if not _wants_json(request):
        messages.info(request, f"Undid your answer on {_item_name(undone.item)}. Answer it again.")
        return redirect("label", pk=project.pk)
    prefetched = services.lease_next(project, request.user, exclude=[current.item_id]) if current else None
    return JsonResponse(
        {
            "undone": _answer_json(undone),
            "current": _lease_json(current, request.user),
            "next": _lease_json(prefetched, request.user),
            "progress": _progress(project, request.user),
        }
    )


def _label_reply(request, project, *, status=200, error=None, **payload):
    """JSON for the script: the outcome plus the next prefetched lease (leased while the
    items the browser already holds are excluded), or a redirect for a plain form post."""
    if not _wants_json(request):
        if error:
            messages.error(request, error)
        return redirect("label", pk=project.pk)
    exclude = [n for n in map(_int_or_none, request.POST.getlist("exclude")) if n is not None]
    release = [n for n in map(_int_or_none, request.POST.getlist("release")) if n is not None]
    lease = services.lease_next(project, request.user, exclude=exclude, release=release)
    body = {**payload, "next": _lease_json(lease, request.user), "progress": _progress(project, request.user)}
    if error:
        body["error"] = error
    return JsonResponse(body, status=status)


@login_required
def project_status(request, pk):
    """The live indicator's data over plain HTTP (the page falls back to it when the socket
    is down); the websocket sends the same dict."""
    project = _project_for(request, pk)
    return JsonResponse(services.trainer_status(project))


def _wants_json(request):
    return "application/json" in request.headers.get("Accept", "")


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _item_name(item):
    return item.original_name or f"image #{item.pk}"


def _lease_json(lease, user):
    if lease is None:
        return None
    item = lease.item
    previous = (
        Annotation.objects.filter(item=item, annotator=user, undone=True).select_related("label").order_by("-id").first()
    )
    return {
        "item": item.pk,
        "name": _item_name(item),
        "url": item.image_url(),
        "width": item.width,
        "height": item.height,
        "suggestion": _suggestion_json(lease.suggestion),
        "previous": _answer_json(previous) if previous else None,
    }


def _suggestion_json(suggestion):
    """The model's guess as the page shows it, or None when there is no usable guess."""
    if not isinstance(suggestion, dict) or not suggestion.get("label"):
        return None
    confidence = suggestion.get("confidence")
    top = [
        {"label": str(row["label"]), "confidence": float(row["confidence"])}
        for row in suggestion.get("top") or []
        if isinstance(row, dict) and "label" in row and isinstance(row.get("confidence"), (int, float))
    ]
    return {
        "label": str(suggestion["label"]),
        "confidence": float(confidence) if isinstance(confidence, (int, float)) else None,
        "top": top[:5],
    }


def _answer_json(annotation):
    return {
        "item": annotation.item_id,
        "label": annotation.label.name if annotation.label_id else None,
        "skip": annotation.skipped,
    }


def _progress(project, user):
    items = Item.objects.filter(project=project)
    return {
        "total": items.count(),
        "labeled": items.filter(label_count__gt=0).count(),
        "mine": services.user_answer_count(project, user),
    }


# --- dashboard -----------------------------------------------------------------------------


DASHBOARD_ROLES = (Role.OWNER, Role.VIEWER)
DASHBOARD_REFUSAL = (
    "The dashboard is for this project's owners and viewers. Your own progress is on the "
    "project page; ask an owner of this project if you need the dashboard."
)
EXPORT_LINKS = [
    ("csv", "Labels", "CSV"),
    ("jsonl", "Labels", "JSON Lines"),
    ("imagefolder", "Images in class folders", "zip"),
    ("model", "Model checkpoint", ".pt, once the model has trained"),
    ("embeddings", "Embeddings", ".npz, once the model has trained"),
]


@login_required
def project_dashboard(request, pk):
    """Progress, classes, annotators and exports; read-only, so viewers see all of it."""
    project = _project_for(request, pk, roles=DASHBOARD_ROLES, refusal=DASHBOARD_REFUSAL)
    summary = dashboard.summary(project)
    model = summary["model"]
    context = {
        "project": project,
        "model": model,
        "chart_data": {"model": _chart_payload(model)},
        "dash_fields": dashboard.fields(model),
        "is_owner": project.current_role == Role.OWNER,
        "classes": project.ordered_classes(),
        "progress": summary["progress"],
        "progress_segments": _progress_segments(summary["progress"]),
        "class_rows": _class_rows(summary["per_class"]),
        "annotator_rows": [{**row, "median_s": _seconds(row["median_ms"])} for row in summary["annotators"]],
        "agreement": summary["agreement"],
        "percent_done": _percent_done(summary["progress"]),
        "export_links": EXPORT_LINKS,
        "trainer_status": services.trainer_status(project),
    }
    return render(request, "annotator/project_dashboard.html", context)


def _chart_payload(model):
    """The part of the model summary static/js/dashboard.js draws (the API sends the same)."""
    return {key: model[key] for key in ("version", "curve", "uncertainty", "classes")}


def _percent(part, whole):
    return round(100 * part / whole) if whole else 0


def _percent_done(progress):
    """Rounded, but never 100% while an image still needs a label."""
    percent = _percent(progress["done"], progress["items"])
    return min(percent, 99) if progress["remaining"] else percent


def _width(part, whole):
    """A CSS width in percent with a dot decimal, whatever the locale."""
    return f"{100 * part / whole:.2f}" if whole else "0"


def _progress_segments(progress):
    """The stacked bar: done, labeled but needing more labels, skipped only, untouched."""
    parts = [
        ("done", "Done", progress["done"]),
        ("in-progress", "Needs more labels", progress["in_progress"]),
        ("skipped", "Skipped only", progress["skipped"]),
        ("untouched", "Not answered yet", progress["untouched"]),
    ]
    return [
        {"key": key, "name": name, "count": n, "width": _width(n, progress["items"])}
        for key, name, n in parts
        if n or key in ("done", "untouched")
    ]


def _class_rows(per_class):
    total = sum(n for _name, n in per_class)
    top = max((n for _name, n in per_class), default=0)
    return [
        {"name": name, "count": n, "width": _width(n, top), "share": _percent(n, total)}
        for name, n in per_class
    ]


def _seconds(ms):
    if ms is None:
        return None
    return f"{ms / 1000:.1f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"
