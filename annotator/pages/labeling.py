"""The labeling page and its JSON endpoints (lease the next item, answer, undo) and the
trainer status for pages that cannot use the websocket."""
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotator.access import LABELING_ROLES, Invalid, ServiceError, project_for
from annotator.labeling.answers import submit_annotation, undo_last
from annotator.labeling.leasing import lease_next
from annotator.modelloop.status import trainer_status
from annotator.models import Annotation, Item, Role
from annotator.projects.selectors import user_answer_count

VIEWER_CANNOT_LABEL = "Viewers cannot label in this project. Ask a project owner to make you an annotator."


MAX_DURATION_MS = 24 * 3600 * 1000


@login_required
def label(request, pk):
    project = project_for(request.user, pk, roles=LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    current = lease_next(project, request.user)
    prefetched = lease_next(project, request.user, exclude=[current.item_id]) if current else None
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
        "trainer_status": trainer_status(project),
    }
    return render(request, "annotator/label.html", context)


@login_required
@require_POST
def label_next(request, pk):
    project = project_for(request.user, pk, roles=LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    return _label_reply(request, project)


@login_required
@require_POST
def label_answer(request, pk):
    project = project_for(request.user, pk, roles=LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    data = request.POST
    item_id = _int_or_none(data.get("item"))
    duration_ms = _int_or_none(data.get("duration_ms"))
    if duration_ms is not None and not 0 <= duration_ms <= MAX_DURATION_MS:
        duration_ms = None
    try:
        if item_id is None:
            raise Invalid("The answer names no item. Reload the page and answer again.")
        result = submit_annotation(
            project,
            request.user,
            item_id=item_id,
            label=data.get("label") or None,
            skip=data.get("skip") in {"1", "true", "on"},
            idempotency_key=data.get("idempotency_key", ""),
            duration_ms=duration_ms,
        )
    except ServiceError as exc:
        return _label_reply(request, project, status=exc.status, error=exc.message, item=item_id)
    return _label_reply(request, project, saved=_answer_json(result.annotation), replayed=not result.created)


@login_required
@require_POST
def label_undo(request, pk):
    project = project_for(request.user, pk, roles=LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    try:
        undone = undo_last(project, request.user)
    except ServiceError as exc:
        return _label_reply(request, project, status=exc.status, error=exc.message)
    # The undone item is now the user's only lease, so lease_next returns it first.
    current = lease_next(project, request.user)
    if not _wants_json(request):
        messages.info(request, f"Undid your answer on {_item_name(undone.item)}. Answer it again.")
        return redirect("label", pk=project.pk)
    prefetched = lease_next(project, request.user, exclude=[current.item_id]) if current else None
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
    lease = lease_next(project, request.user, exclude=exclude, release=release)
    body = {**payload, "next": _lease_json(lease, request.user), "progress": _progress(project, request.user)}
    if error:
        body["error"] = error
    return JsonResponse(body, status=status)


@login_required
def project_status(request, pk):
    """The live indicator's data over plain HTTP (the page falls back to it when the socket
    is down); the websocket sends the same dict."""
    project = project_for(request.user, pk)
    return JsonResponse(trainer_status(project))


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
        "mine": user_answer_count(project, user),
    }
