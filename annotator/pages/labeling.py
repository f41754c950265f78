"""The labeling page and its JSON endpoints (lease the next item, answer, undo) and the
trainer status for pages that cannot use the websocket.

The endpoints speak the API's labeling contract (annotator/labeling/serializers.py) over the
session: the request is checked by LeaseQuerySerializer and AnswerSerializer, a lease is
LeasedItemSerializer's JSON and an answer AnnotationSerializer's, exactly as
POST /api/projects/<pk>/next/ and .../annotations/ answer them. Around them the page's reply
adds what only the page shows:

    {"next": lease or null,            # the next item to prefetch (the API's /next/ JSON)
     "progress": {"total", "labeled", "mine"},
     "items": {"<id>": {"name": ..., "previous": answer or null}},  # for each lease in the reply
     "saved": answer, "replayed": bool,   # /answer/
     "undone": answer, "current": lease,  # /undo/
     "error": "a sentence"}               # a refusal, with its HTTP status
"""
import math
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotator.access import LABELING_ROLES, ServiceError, project_for
from annotator.labeling.answers import answer_and_next, undo_last
from annotator.labeling.leasing import lease_next
from annotator.labeling.serializers import (
    AnnotationSerializer,
    AnswerSerializer,
    LeasedItemSerializer,
    LeaseQuerySerializer,
)
from annotator.modelloop.status import trainer_status
from annotator.models import UNSURE_HOTKEY, Annotation, Item, Role
from annotator.projects.instructions import instructions_for, take_unseen
from annotator.projects.selectors import user_answer_count

VIEWER_CANNOT_LABEL = "Viewers cannot label in this project. Ask a project owner to make you an annotator."
# Below this confidence the page shows the guess's runners-up too (static/js/label.js: SURE).
SURE = 0.9


@login_required
def label(request, pk):
    project = project_for(request.user, pk, roles=LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    current = lease_next(project, request.user)
    prefetched = lease_next(project, request.user, exclude=[current.item_id]) if current else None
    state = {
        "current": _lease_json(request, current),
        "next": _lease_json(request, prefetched),
        "items": _items_json(request.user, current, prefetched),
        "progress": _progress(project, request.user),
    }
    classes = project.ordered_classes()
    shown = state["items"].get(str(current.item_id)) if current else None
    instructions = instructions_for(project)
    context = {
        "project": project,
        "classes": classes,
        "current": state["current"],
        "shown": shown,  # the current item's name and the user's undone answer on it
        "guess": _guess(state["current"], classes),
        "state": state,
        "answer_key": uuid.uuid4().hex,  # for the plain form post; the script makes its own
        "has_items": state["progress"]["total"] > 0,
        "is_owner": project.current_role == Role.OWNER,
        "trainer_status": trainer_status(project),
        "instructions": instructions,
        # Open on a first visit and after an owner's edit, once per version (recorded now).
        "show_instructions": take_unseen(project, request.user, instructions),
        # A class that holds the key (a project older than the key) keeps it; the button then has none.
        "unsure_key": "" if any(c.hotkey == UNSURE_HOTKEY for c in classes) else UNSURE_HOTKEY,
    }
    return render(request, "annotator/label.html", context)


@login_required
@require_POST
def label_next(request, pk):
    """The API's /next/ for the page: `exclude` the items the page holds, `release` a
    prefetched item it drops."""
    project = project_for(request.user, pk, roles=LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    query = LeaseQuerySerializer(data=request.POST)
    if not query.is_valid():
        return _reply(request, project, None, status=400, error=_error_text(query.errors))
    lease = lease_next(
        project, request.user, exclude=set(query.validated_data["exclude"]), release=set(query.validated_data["release"])
    )
    return _reply(request, project, lease)


@login_required
@require_POST
def label_answer(request, pk):
    """The API's /annotations/ for the page, plus the next item to prefetch (leased while the
    items the page still holds, `exclude`, are left out)."""
    project = project_for(request.user, pk, roles=LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    exclude = _held(request)
    answer = AnswerSerializer(data=_answer_body(request.POST))
    if not answer.is_valid():
        return _reply(request, project, _lease_after_refusal(project, request, exclude), status=400,
                      error=_error_text(answer.errors))
    data = answer.validated_data
    try:
        outcome = answer_and_next(
            project,
            request.user,
            item_id=data["item"],
            label=data.get("label") or None,
            labels=data.get("labels"),
            skip=data["skip"],
            unsure=data["unsure"],
            idempotency_key=data["idempotency_key"],
            duration_ms=data.get("duration_ms"),
            exclude=exclude,
        )
    except ServiceError as exc:
        # Refused: the page goes on with another item.
        return _reply(request, project, _lease_after_refusal(project, request, exclude), status=exc.status,
                      error=exc.message)
    submitted = outcome.submitted
    return _reply(
        request,
        project,
        outcome.next,
        saved=AnnotationSerializer(submitted.annotation).data,
        replayed=not submitted.created,
    )


@login_required
@require_POST
def label_undo(request, pk):
    project = project_for(request.user, pk, roles=LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    try:
        undone = undo_last(project, request.user)
    except ServiceError as exc:
        return _reply(request, project, _lease_after_refusal(project, request, _held(request)), status=exc.status,
                      error=exc.message)
    if not _wants_json(request):
        messages.info(request, f"Undid your answer on {_item_name(undone.item)}. Answer it again.")
        return redirect("label", pk=project.pk)
    # The undone item is now the user's only lease, so lease_next returns it first.
    current = lease_next(project, request.user)
    prefetched = lease_next(project, request.user, exclude=[current.item_id]) if current else None
    return _reply(
        request,
        project,
        prefetched,
        undone=AnnotationSerializer(undone).data,
        current=_lease_json(request, current),
        shown=[current],
    )


@login_required
@require_GET
def label_instructions(request, pk):
    """The instructions overlay, open (label.html's `instructions-overlay`), for a labeling page
    told of a new version over the websocket; the version counts as seen. 204: none now."""
    project = project_for(request.user, pk, roles=LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    instructions = instructions_for(project)
    if not instructions["has_content"]:
        return HttpResponse(status=204)
    take_unseen(project, request.user, instructions)
    context = {"project": project, "instructions": instructions, "show_instructions": True,
               "is_owner": project.current_role == Role.OWNER}
    return render(request, "annotator/label.html#instructions-overlay", context)


@login_required
def project_status(request, pk):
    """The live indicator's data over plain HTTP (the page falls back to it when the socket
    is down); the websocket sends the same dict."""
    project = project_for(request.user, pk)
    return JsonResponse(trainer_status(project))


def _reply(request, project, lease, *, status=200, error=None, shown=(), **payload):
    """JSON for the script: the outcome, the next lease to prefetch and the progress; or, for
    a plain form post, a redirect to the page (with the refusal as a message)."""
    if not _wants_json(request):
        if error:
            messages.error(request, error)
        return redirect("label", pk=project.pk)
    body = {
        **payload,
        "next": _lease_json(request, lease),
        "items": _items_json(request.user, *shown, lease),
        "progress": _progress(project, request.user),
    }
    if error:
        body["error"] = error
    return JsonResponse(body, status=status)


def _answer_body(post):
    """The answer of a form post. A form cannot send an empty list, so the page marks a set
    answer with `labels_sent`: then `labels` is the list of checked classes, empty for "none
    applies"; with `skip` the checked classes do not count."""
    if "labels_sent" not in post:
        return post
    body = {key: post.get(key) for key in post if key not in ("labels", "labels_sent", "exclude", "set")}
    return body if post.get("skip") else {**body, "labels": post.getlist("labels")}


def _held(request):
    """The items the page holds (`exclude`), for an endpoint whose own input is another."""
    query = LeaseQuerySerializer(data=request.POST)
    return set(query.validated_data["exclude"]) if query.is_valid() else set()


def _lease_after_refusal(project, request, exclude):
    """After a refused request the script still gets an item to go on with; a plain form post
    reloads the page, which leases by itself."""
    return lease_next(project, request.user, exclude=exclude) if _wants_json(request) else None


def _wants_json(request):
    return "application/json" in request.headers.get("Accept", "")


def _error_text(errors):
    """A serializer's messages as one sentence for the page's banner."""
    parts = []

    def walk(field, value):
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(field if key == "non_field_errors" else f"{field} {key}".strip(), inner)
        elif isinstance(value, list):
            for inner in value:
                walk(field, inner)
        else:
            parts.append(f"{field}: {value}" if field else str(value))

    walk("", errors)
    return " ".join(parts) or "The request was not valid. Reload the page and try again."


def _item_name(item):
    return item.original_name or f"image #{item.pk}"


def _lease_json(request, lease):
    """The lease as the API's /next/ returns it (LeasedItemSerializer), or None."""
    return LeasedItemSerializer(lease, context={"request": request}).data if lease else None


def _items_json(user, *leases):
    """What the page shows beside each leased item that the API's lease does not carry: the
    image's name and the user's earlier, undone answer on it (AnnotationSerializer)."""
    items = {}
    for lease in leases:
        if lease is None:
            continue
        previous = (
            Annotation.objects.filter(item_id=lease.item_id, annotator=user, undone=True)
            .select_related("label", "annotator")
            .order_by("-id")
            .first()
        )
        items[str(lease.item_id)] = {
            "name": _item_name(lease.item),
            "previous": AnnotationSerializer(previous).data if previous else None,
        }
    return items


def _percent(x):
    """The page's percentage (label.js: percent): rounded half up, "<1%" for a small non-zero."""
    p = math.floor(x * 100 + 0.5)  # JavaScript's Math.round
    return ("<1" if p == 0 and x > 0 else str(p)) + "%"


def _guess(lease_json, classes):
    """The model's guess on the current item as label.js renders it (showGuess): the class,
    its confidence, and the next two classes of the top ones when the model is unsure."""
    suggestion = lease_json and lease_json.get("suggestion")
    if not isinstance(suggestion, dict) or not suggestion.get("label"):
        return None
    if isinstance(suggestion.get("labels"), list):  # a multi-label version's set, as label.js's showGuess
        chosen = suggestion["labels"]
        confidence = suggestion.get("set_confidence")
        return {"labels": chosen, "set_text": ", ".join(chosen) or "none applies",
                "confidence": "" if confidence is None else _percent(confidence), "runners_up": []}
    confidence = suggestion.get("confidence")
    hotkeys = {c.name: c.hotkey for c in classes if c.hotkey}
    others = [row for row in suggestion.get("top") or [] if row.get("label") != suggestion["label"]][:2]
    unsure = confidence is None or confidence < SURE
    return {
        "kind": f"Guess from {suggestion['source']}" if suggestion.get("source") else "Model guess",
        "label": suggestion["label"],
        "confidence": "" if confidence is None else _percent(confidence),
        "runners_up": [
            {"label": row["label"], "hotkey": hotkeys.get(row["label"], ""), "confidence": _percent(row["confidence"])}
            for row in others
        ]
        if unsure
        else [],
    }


def _progress(project, user):
    counts = Item.objects.filter(project=project).aggregate(total=Count("id"), labeled=Count("id", filter=Q(label_count__gt=0)))
    return {**counts, "mine": user_answer_count(project, user)}
