"""The HTML pages: project list and creation, project overview (members, import), labeling.

Every view starts with `_project_for(request, pk, roles=...)`, which 404s outsiders and turns
a wrong role into a 403 page. The labeling page holds two leases (the current item and a
prefetched one); static/js/label.js swaps to the prefetched image at once and talks to the
label-next / label-answer / label-undo endpoints here in the background. Those endpoints
answer JSON to the script (Accept: application/json) and redirect back to the page for a
plain form post, so labeling also works without JavaScript.
"""
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import importing, services
from .forms import MemberForm, ProjectForm
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
                return redirect(project)
            form = MemberForm()
    return _render_detail(request, project, partial="members", member_form=form, member_notice=notice)


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
        "members": project.memberships.select_related("user").order_by("user__username") if is_owner else (),
        "roles": Role.choices,
        "member_form": MemberForm(),
        **extra,
    }
    form = context["member_form"]
    failed = bool(form.errors or context.get("import_error"))
    template = "annotator/project_detail.html"
    if request.htmx and partial:
        return render(request, f"{template}#{partial}", context)
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
    lease = services.lease_next(project, request.user, exclude=exclude)
    body = {**payload, "next": _lease_json(lease, request.user), "progress": _progress(project, request.user)}
    if error:
        body["error"] = error
    return JsonResponse(body, status=status)


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
