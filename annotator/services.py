"""Multi-model writes: leasing the next item, submitting and undoing answers, statistics.

Every function here is the one code path shared by the HTML pages and the REST API.
Concurrency: on PostgreSQL the candidate item row is locked with SELECT ... FOR UPDATE SKIP
LOCKED and availability is re-checked in a fresh statement while the lock is held, so two
annotators never lease the same item; on SQLite every transaction is IMMEDIATE (one writer
at a time), which gives the same guarantee.
"""
import csv
import hashlib
import io
import json
import random
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath

import numpy as np

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, ProtectedError, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from . import predictions
from .models import (Annotation, AnnotationChange, Item, LabelClass, Lease, Membership, Project,
                     Role, TrainerState, default_hotkeys)

# The current item and one prefetched item.
MAX_LEASES_PER_USER = 2

LABELING_ROLES = (Role.OWNER, Role.ANNOTATOR)

# Row ids are 64-bit; a larger number names no row (and SQLite refuses it in a query).
MAX_ID = 2**63 - 1


class ServiceError(Exception):
    """A refusal with a sentence meant for the user."""

    status = 400

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class Invalid(ServiceError):
    status = 400


class Conflict(ServiceError):
    status = 409


class Forbidden(ServiceError):
    status = 403


def get_project_for_user(user, pk, *, roles=None):
    """The project if `user` is a member (404 otherwise, so outsiders learn nothing);
    Forbidden if the member's role is not in `roles`."""
    if not user.is_authenticated or not is_row_id(pk):
        raise Http404("No such project.")
    membership = Membership.objects.select_related("project").filter(project_id=pk, user=user).first()
    if membership is None:
        raise Http404("No such project.")
    if roles is not None and membership.role not in roles:
        raise Forbidden(f"Your role in this project is {membership.role}; this needs {' or '.join(roles)}.")
    project = membership.project
    project.current_role = membership.role
    return project


def is_row_id(value):
    """Whether `value` (an int or a string from a URL) can be the id of a row."""
    try:
        return 1 <= int(value) <= MAX_ID
    except (TypeError, ValueError):
        return False


def projects_for_user(user):
    return Project.objects.filter(memberships__user=user)


@transaction.atomic
def create_project(owner, *, name, classes, **options):
    names = [c.strip() for c in classes]
    if not name.strip():
        raise Invalid("A project needs a name.")
    _check_class_names(names)
    project = Project(name=name.strip(), slug=Project.unique_slug(name), created_by=owner, **options)
    project.full_clean()
    project.save()
    LabelClass.objects.bulk_create(
        LabelClass(project=project, name=n, order=i, hotkey=key)
        for i, (n, key) in enumerate(zip(names, default_hotkeys(names)))
    )
    Membership.objects.create(project=project, user=owner, role=Role.OWNER)
    return project


def add_member(project, username, role):
    if role not in Role.values:
        raise Invalid(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise Invalid(f"There is no user named {username!r}. Ask an administrator to create the account first.")
    with transaction.atomic():
        current = Membership.objects.select_for_update().filter(project=project, user=user).first()
        if current and current.role == Role.OWNER and role != Role.OWNER:
            if not Membership.objects.filter(project=project, role=Role.OWNER).exclude(pk=current.pk).exists():
                raise Invalid(f"{username} is the only owner of this project; make someone else an owner first.")
        membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


# --- leasing -----------------------------------------------------------------------------


def _uses_row_locks():
    return connection.features.has_select_for_update_skip_locked


def _available_items(project, user, now):
    """Items the user may be served: open, not answered by the user, not held by the user,
    and with a free slot (labels + others' live leases < annotations per item)."""
    k = project.annotations_per_item
    qs = Item.objects.filter(project=project, done=False).exclude(
        Exists(Annotation.objects.filter(item=OuterRef("pk"), annotator=user, undone=False))
    ).exclude(Exists(Lease.objects.filter(item=OuterRef("pk"), user=user)))
    live_leases = Lease.objects.filter(item=OuterRef("pk"), expires_at__gt=now)
    if k == 1:
        return qs.exclude(Exists(live_leases))
    # A scalar subquery, not a JOIN + GROUP BY: PostgreSQL refuses FOR UPDATE with aggregates.
    held = live_leases.values("item").annotate(n=Count("id")).values("n")
    return qs.annotate(held=Coalesce(Subquery(held), 0)).filter(label_count__lt=k - F("held"))


def _still_available(item, project, user, now):
    """Fresh-statement re-check made while the item row is locked."""
    item.refresh_from_db(fields=["label_count", "done"])
    if item.done:
        return False
    if Annotation.objects.filter(item=item, annotator=user, undone=False).exists():
        return False
    if Lease.objects.filter(item=item, user=user).exists():  # leased by the user's other tab meanwhile
        return False
    held = Lease.objects.filter(item=item, expires_at__gt=now).exclude(user=user).count()
    return item.label_count + held < project.annotations_per_item


def _claim_item(project, user, now, *, audit):
    """Audit draws are uniform among the available items; otherwise the model's ranked queue
    comes first, then the rest in `priority` order."""
    if audit:
        return _claim_in_order(project, user, now, lambda qs: qs.order_by("?"))
    return _claim_in_order(
        project, user, now, lambda qs: qs.filter(queue_entry__isnull=False).order_by("queue_entry__rank")
    ) or _claim_in_order(project, user, now, lambda qs: qs.order_by("priority", "pool_index"))


def _claim_in_order(project, user, now, ordered):
    tried = set()
    for _ in range(10):
        qs = ordered(_available_items(project, user, now).exclude(pk__in=tried))
        if _uses_row_locks():
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        candidates = list(qs[:3])
        for item in candidates:
            if _still_available(item, project, user, now):
                return item
            tried.add(item.pk)
        if len(candidates) < 3:
            return None
    return None


def lease_next(project, user, *, exclude=(), release=()):
    """The user's current lease (oldest live one not in `exclude`), refreshed; else a new
    lease on the best available item; None when nothing is available to this user.
    Leases on the items in `release` are given back first (a prefetched item the page
    drops because a new queue arrived)."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.LEASE_SECONDS)
    with transaction.atomic():
        # One lease request per user and project at a time (two tabs), so the cap holds.
        list(Membership.objects.select_for_update().filter(project=project, user=user).values_list("pk"))
        if release:
            Lease.objects.filter(project=project, user=user, item_id__in=list(release)).delete()
        held = list(
            Lease.objects.filter(project=project, user=user, expires_at__gt=now)
            .select_related("item")
            .order_by("created_at", "id")
        )
        for lease in held:
            if lease.item_id in exclude:
                continue
            if lease.item.done:
                lease.delete()
                continue
            lease.expires_at = expires
            # An UPDATE, not save(): the user's other tab may have answered (deleted) it meanwhile.
            if Lease.objects.filter(pk=lease.pk).update(expires_at=expires):
                return lease
        if sum(1 for lease in held if lease.item_id in exclude) >= MAX_LEASES_PER_USER:
            return None
        Lease.objects.filter(project=project, expires_at__lte=now).delete()
        audit = random.random() < project.audit_fraction
        item = _claim_item(project, user, now, audit=audit)
        if item is None and audit:
            item = _claim_item(project, user, now, audit=False)
        if item is None:
            return None
        # The guess is fixed when the item is served: for audit items it is the honest
        # measure of the live model (the human has not answered yet).
        current = predictions.current(project)
        return Lease.objects.create(
            project=project,
            item=item,
            user=user,
            expires_at=expires,
            is_audit=audit,
            suggestion=current.suggestion(item) if current else None,
            model_version=current.version if current else None,
        )


def release_leases(project, user):
    Lease.objects.filter(project=project, user=user).delete()


# --- answers -------------------------------------------------------------------------------


@dataclass
class SubmitResult:
    annotation: Annotation
    created: bool


def _fingerprint(item_id, label_name, skip):
    body = json.dumps({"item": int(item_id), "label": None if skip else label_name, "skip": bool(skip)})
    return hashlib.sha256(body.encode()).hexdigest()


def _replay(user, key, fingerprint):
    existing = Annotation.objects.filter(annotator=user, idempotency_key=key).select_related("label").first()
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise Conflict(
            "This idempotency key was already used for a different answer. "
            "Send a new key for a new answer."
        )
    return SubmitResult(existing, created=False)


def submit_annotation(project, user, *, item_id, label=None, skip=False, idempotency_key, duration_ms=None):
    """Store the user's answer (a class name, or a skip) for one item, exactly once per key."""
    key = (idempotency_key or "").strip()
    if not key or len(key) > 100:
        raise Invalid("idempotency_key is required (1-100 characters): a fresh random string per answer.")
    if not skip and not label:
        raise Invalid("Give either a class name in 'label' or 'skip': true.")
    if skip and label:
        raise Invalid("An answer is either a class or a skip, not both.")
    fingerprint = _fingerprint(item_id, label, skip)
    replay = _replay(user, key, fingerprint)
    if replay:
        return replay
    now = timezone.now()
    with transaction.atomic():
        item = Item.objects.select_for_update().filter(project=project, pk=item_id).first()
        if item is None:
            raise Invalid(f"Item {item_id} is not in this project.")
        replay = _replay(user, key, fingerprint)  # a concurrent retry may have committed meanwhile
        if replay:
            return replay
        label_obj = None
        if not skip:
            label_obj = LabelClass.objects.filter(project=project, name=label).first()
            if label_obj is None:
                raise Invalid(f"Unknown class {label!r}. This project's classes are: {', '.join(project.class_names())}.")
        if Annotation.objects.filter(item=item, annotator=user, undone=False).exists():
            raise Conflict("You already answered this item. Undo your answer to change it.")
        lease = Lease.objects.filter(item=item, user=user).first()
        holds_live_lease = lease is not None and lease.expires_at > now
        if not skip and not holds_live_lease:
            others = Lease.objects.filter(item=item, expires_at__gt=now).exclude(user=user).count()
            if item.done or item.label_count + others >= project.annotations_per_item:
                raise Conflict(
                    f"Your lease on this item expired and it has since been labeled or taken by another "
                    f"annotator, so your answer ({label}) was not saved."
                )
        try:
            with transaction.atomic():
                annotation = Annotation.objects.create(
                    item=item,
                    annotator=user,
                    label=label_obj,
                    skipped=skip,
                    idempotency_key=key,
                    request_fingerprint=fingerprint,
                    duration_ms=duration_ms,
                    suggestion=lease.suggestion if lease else None,
                    model_version_id=lease.model_version_id if lease else None,
                    is_audit=lease.is_audit if lease else False,
                )
        except IntegrityError:
            replay = _replay(user, key, fingerprint)
            if replay:
                return replay
            raise Conflict("You already answered this item. Undo your answer to change it.")
        if not skip:
            item.label_count += 1
            item.done = item.label_count >= project.annotations_per_item
            item.save(update_fields=["label_count", "done"])
        if lease is not None:
            lease.delete()
    return SubmitResult(annotation, created=True)


def _withdraw(annotation, item, project):
    """Mark the answer undone (kept for history) and give its label back to the item.
    The caller holds the item row lock."""
    annotation.undone = True
    annotation.save(update_fields=["undone"])
    if not annotation.skipped:
        item.label_count = max(0, item.label_count - 1)
        item.done = item.label_count >= project.annotations_per_item
        item.save(update_fields=["label_count", "done"])


def undo_last(project, user):
    """Take back the user's most recent answer in the project; the item becomes the user's
    current item again. Returns the undone annotation."""
    now = timezone.now()
    with transaction.atomic():
        annotation = (
            Annotation.objects.filter(item__project=project, annotator=user, undone=False, source=Annotation.Source.HUMAN)
            .order_by("-created_at", "-id")
            .first()
        )
        if annotation is None:
            raise Invalid("There is no answer of yours to undo in this project.")
        item = Item.objects.select_for_update().get(pk=annotation.item_id)
        _withdraw(annotation, item, project)
        # The undone item becomes the only (so the current) lease; the prefetch is re-drawn.
        Lease.objects.filter(project=project, user=user).delete()
        Lease.objects.create(
            project=project,
            item=item,
            user=user,
            expires_at=now + timedelta(seconds=settings.LEASE_SECONDS),
            is_audit=annotation.is_audit,
            suggestion=annotation.suggestion,
            model_version_id=annotation.model_version_id,
        )
    return annotation


# --- statistics ----------------------------------------------------------------------------


def project_stats(project):
    live = Annotation.objects.filter(item__project=project, undone=False)
    per_class = dict.fromkeys(project.class_names(), 0)
    for row in live.filter(skipped=False).values("label__name").annotate(n=Count("id")):
        per_class[row["label__name"]] = row["n"]
    per_annotator = {
        row["annotator__username"]: row["n"]
        for row in live.filter(skipped=False).values("annotator__username").annotate(n=Count("id")).order_by()
    }
    items = Item.objects.filter(project=project)
    skipped = (
        items.filter(label_count=0)
        .filter(Exists(Annotation.objects.filter(item=OuterRef("pk"), undone=False, skipped=True)))
        .count()
    )
    return {
        "items": items.count(),
        "labeled": items.filter(label_count__gt=0).count(),
        "skipped": skipped,
        "per_class": per_class,
        "per_annotator": per_annotator,
    }


def user_answer_count(project, user):
    return Annotation.objects.filter(item__project=project, annotator=user, undone=False).count()


# --- the model loop, as the pages see it ----------------------------------------------------


def wilson_interval(correct, n, z=1.96):
    """95% Wilson score interval of a proportion (good at small n and near 0 or 1)."""
    if n == 0:
        return None, None
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def audit_answers(project):
    """(guess == answer, version id, labels the version had) for every live audit answer that
    had a model guess: audit items are drawn uniformly, so these are unbiased."""
    rows = (
        Annotation.objects.filter(item__project=project, is_audit=True, undone=False, skipped=False)
        .exclude(suggestion__isnull=True)
        .values_list("suggestion", "label__name", "model_version_id", "model_version__labels_used")
    )
    return [
        (isinstance(s, dict) and s.get("label") == name, version, used)
        for s, name, version, used in rows
    ]


def audit_accuracy(project, answers=None):
    """Live accuracy estimate of the model's guesses on audit items, with its 95% interval.
    Counted in the database (the status is computed after every model version), or over
    `answers` from audit_answers."""
    if answers is None:
        from django.db.models import Q
        from django.db.models.fields.json import KeyTextTransform

        rows = Annotation.objects.filter(
            item__project=project, is_audit=True, undone=False, skipped=False
        ).annotate(guess=KeyTextTransform("label", "suggestion")).filter(guess__isnull=False)
        counts = rows.aggregate(n=Count("id"), correct=Count("id", filter=Q(guess=F("label__name"))))
        n, correct = counts["n"], counts["correct"]
    else:
        n = len(answers)
        correct = sum(1 for ok, _v, _u in answers if ok)
    low, high = wilson_interval(correct, n)
    return {"n": n, "correct": correct, "estimate": correct / n if n else None, "low": low, "high": high}


def trainer_status(project):
    """What the live indicator shows: phase, progress, model version, device, accuracy."""
    state = TrainerState.objects.filter(project=project).select_related("current_version").first()
    now = timezone.now()
    version = state.current_version if state else None
    alive = bool(state and state.owner and state.lease_expires_at and state.lease_expires_at > now)
    phase = state.phase if state else TrainerState.Phase.WAITING
    detail = state.detail if state else ""
    if not alive and phase not in (TrainerState.Phase.FAILED, TrainerState.Phase.PAUSED):
        phase = TrainerState.Phase.WAITING
        detail = "No trainer is running: labeling goes on in the last queue's order."
    return {
        "phase": phase,
        "phase_label": TrainerState.Phase(phase).label,
        "progress": state.progress if state and alive else None,
        "detail": detail,
        "version": version.number if version else None,
        "version_kind": version.kind if version else None,
        "labels_used": version.labels_used if version else 0,
        "device": (state.device if state else "") or "",
        "error": state.last_error if state and phase == TrainerState.Phase.FAILED else "",
        "accuracy": audit_accuracy(project),
        "updated_at": (state.updated_at if state else now).isoformat(),
    }


# --- project administration ------------------------------------------------------------------
# Settings, classes, members, label import, and owners' corrections of answers. Pages and API
# call the same functions; every refusal is a ServiceError with a sentence for the user.

SETTINGS_FIELDS = ("name", "strategy", "query_batch_size", "audit_fraction", "annotations_per_item")
MAX_CLASSES = 500
LABEL_IMPORT_MAX_BYTES = 5 * 1024 * 1024
LABEL_IMPORT_MAX_ROWS = 50_000
LABEL_IMPORT_STATUSES = ("imported", "unknown_file", "unknown_class", "already_labeled", "bad_row")
_CHUNK = 500  # ids per IN (...) query


class NotFound(ServiceError):
    status = 404


def _lock_project_row(project):
    """Serializes administrative writes of one project (SQLite: every transaction already is)."""
    if connection.features.has_select_for_update:
        list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk", flat=True))


def _chunks(values, size=_CHUNK):
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


def find_class(project, name, *, classes=None):
    """The project's class called `name` (exactly, else ignoring case when that is unambiguous),
    or Invalid naming the classes."""
    classes = project.ordered_classes() if classes is None else classes
    name = (name or "").strip()
    exact = [c for c in classes if c.name == name]
    folded = [c for c in classes if c.name.casefold() == name.casefold()]
    match = exact or (folded if len(folded) == 1 else [])
    if not match:
        names = ", ".join(c.name for c in classes)
        raise Invalid(f"Unknown class {name!r}. This project's classes are: {names}.")
    return match[0]


@transaction.atomic
def update_settings(project, **changes):
    """Change any of SETTINGS_FIELDS. A new answers-per-item count re-decides which items
    are done, so raising it puts partly labeled items back in the queue."""
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise Invalid(f"Unknown settings: {', '.join(sorted(unknown))}. Settings are {', '.join(SETTINGS_FIELDS)}.")
    if "name" in changes:
        changes["name"] = (changes["name"] or "").strip()
        if not changes["name"]:
            raise Invalid("A project needs a name.")
    _lock_project_row(project)
    for field, value in changes.items():
        setattr(project, field, value)
    project.full_clean()
    project.save(update_fields=list(changes) or None)
    if "annotations_per_item" in changes:
        k = project.annotations_per_item
        items = Item.objects.filter(project=project)
        items.filter(done=True, label_count__lt=k).update(done=False)
        items.filter(done=False, label_count__gte=k).update(done=True)
    return project


@transaction.atomic
def change_project(project, *, classes=None, **changes):
    """Settings and the class list (as set_classes takes it) together: both change or neither."""
    if changes:
        update_settings(project, **changes)
    if classes is not None:
        set_classes(project, classes)
    return project


def class_usage(project):
    """{class id: (live labels, all answers incl. deleted ones)}: a used class cannot go."""
    usage = {c.pk: (0, 0) for c in project.ordered_classes()}
    rows = (
        Annotation.objects.filter(label__project=project)
        .values("label_id", "undone")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        live, total = usage.get(row["label_id"], (0, 0))
        usage[row["label_id"]] = (live + (0 if row["undone"] else row["n"]), total + row["n"])
    return usage


def _check_class_names(names):
    if len(names) < 2:
        raise Invalid("A project needs at least two classes.")
    if len(names) > MAX_CLASSES:
        raise Invalid(f"A project can have at most {MAX_CLASSES} classes.")
    if any(not n for n in names):
        raise Invalid("Class names cannot be empty.")
    if any(len(n) > 100 for n in names):
        raise Invalid("Class names are limited to 100 characters.")
    seen = set()
    for n in names:
        if n in seen:
            raise Invalid(f"Class names must be unique; {n!r} appears twice.")
        seen.add(n)


def _refuse_used_class(label, live, total):
    if live:
        raise Invalid(
            f"The class {label.name!r} cannot be removed: {live} label{'s' if live != 1 else ''} use it. "
            f"Rename it instead, or correct or delete those labels first."
        )
    raise Invalid(
        f"The class {label.name!r} cannot be removed: the history of {total} deleted answer"
        f"{'s' if total != 1 else ''} refers to it. Rename it instead."
    )


@transaction.atomic
def set_classes(project, entries):
    """Make the class list `entries`, in order: [{"id": existing class id or None, "name"}].
    Existing ids are renamed and moved, entries without an id are added, and classes left out
    are removed (refused while any answer refers to them). Hotkeys follow the new order."""
    _lock_project_row(project)
    current = {c.pk: c for c in project.ordered_classes()}
    names = [(e.get("name") or "").strip() for e in entries]
    ids = [e.get("id") for e in entries]
    _check_class_names(names)
    given = [i for i in ids if i is not None]
    if len(set(given)) != len(given):
        raise Invalid("Each existing class may appear only once in the list.")
    strangers = [i for i in given if i not in current]
    if strangers:
        listed = ", ".join(f"{c.pk} ({c.name})" for c in current.values())
        raise Invalid(f"Class id {strangers[0]} is not a class of this project. Its classes are: {listed}.")
    usage = class_usage(project)
    for pk, label in current.items():
        if pk not in given and usage[pk][1]:
            _refuse_used_class(label, *usage[pk])
    try:
        LabelClass.objects.filter(pk__in=[pk for pk in current if pk not in given]).delete()
    except ProtectedError:  # answered with it since the check above
        raise Invalid(
            "A class you removed was just used in an answer, so it cannot be removed. Reload the page."
        ) from None
    # Renames go through temporary names, so that swapping two names never trips the unique constraint.
    renamed = [(current[i], n) for i, n in zip(ids, names) if i is not None and current[i].name != n]
    for label, _name in renamed:
        LabelClass.objects.filter(pk=label.pk).update(name=f"renaming-{uuid.uuid4().hex}")
    keys = default_hotkeys(names)
    result = []
    for order, (pk, name, key) in enumerate(zip(ids, names, keys)):
        label = current[pk] if pk is not None else LabelClass(project=project)
        label.name, label.order, label.hotkey = name, order, key
        label.save()
        result.append(label)
    return result


def _class_entries(project):
    return [{"id": c.pk, "name": c.name} for c in project.ordered_classes()]


def add_class(project, name):
    return set_classes(project, _class_entries(project) + [{"id": None, "name": name}])


def rename_class(project, class_id, name):
    entries = _class_entries(project)
    for entry in entries:
        if entry["id"] == class_id:
            entry["name"] = name
            return set_classes(project, entries)
    raise NotFound("There is no such class in this project. Reload the page.")


def move_class(project, class_id, offset):
    """Move a class `offset` places up (negative) or down (positive) the list."""
    entries = _class_entries(project)
    at = next((i for i, e in enumerate(entries) if e["id"] == class_id), None)
    if at is None:
        raise NotFound("There is no such class in this project. Reload the page.")
    to = max(0, min(len(entries) - 1, at + offset))
    entries.insert(to, entries.pop(at))
    return set_classes(project, entries)


def remove_class(project, class_id):
    entries = _class_entries(project)
    kept = [e for e in entries if e["id"] != class_id]
    if len(kept) == len(entries):
        raise NotFound("There is no such class in this project. Reload the page.")
    return set_classes(project, kept)


# --- members -------------------------------------------------------------------------------------


def _membership(project, username):
    membership = project.memberships.select_related("user").filter(user__username=username).first()
    if membership is None:
        raise NotFound(f"{username!r} is not a member of this project.")
    return membership


def change_role(project, username, role):
    """A member's new role (add_member refuses to demote the only owner)."""
    _membership(project, username)
    return add_member(project, username, role)


def remove_member(project, username):
    """Take the user out of the project; their answers stay, their leases are given back."""
    with transaction.atomic():
        _lock_project_row(project)
        membership = _membership(project, username)
        if membership.role == Role.OWNER:
            others = Membership.objects.filter(project=project, role=Role.OWNER).exclude(pk=membership.pk)
            if not others.exists():
                raise Invalid(f"{username} is the only owner of this project; make someone else an owner first.")
        membership.delete()
        Lease.objects.filter(project=project, user=membership.user).delete()
    return membership


# --- corrections by owners -----------------------------------------------------------------------


def _annotation_for_update(project, annotation_id):
    annotation = Annotation.objects.select_for_update().filter(item__project=project, pk=annotation_id).first()
    if annotation is None:
        raise NotFound(f"Annotation {annotation_id} is not in this project.")
    if annotation.undone:
        raise Conflict("This answer was deleted (or undone by its annotator), so it can no longer be changed.")
    return annotation


def correct_annotation(project, annotation_id, label, *, by):
    """Give an answer another class, keeping the old one in its history. A skip has no class
    to correct."""
    with transaction.atomic():
        annotation = _annotation_for_update(project, annotation_id)
        if annotation.skipped:
            raise Invalid("This answer is a skip, so it has no class to correct. Label the image instead.")
        new = find_class(project, label)
        if new.pk == annotation.label_id:
            return annotation
        old = annotation.label.name
        annotation.label = new
        annotation.save(update_fields=["label"])
        AnnotationChange.objects.create(
            annotation=annotation,
            changed_by=by,
            action=AnnotationChange.Action.CORRECT,
            old_label=old,
            new_label=new.name,
        )
    return annotation


def delete_annotation(project, annotation_id, *, by):
    """Mark an answer undone (never a hard delete), update its item as undo_last does, and
    record who did it."""
    with transaction.atomic():
        annotation = _annotation_for_update(project, annotation_id)
        item = Item.objects.select_for_update().get(pk=annotation.item_id)
        _withdraw(annotation, item, project)
        AnnotationChange.objects.create(
            annotation=annotation,
            changed_by=by,
            action=AnnotationChange.Action.DELETE,
            old_label=annotation.label.name if annotation.label_id else "",
        )
    return annotation


# --- items and model versions as the API lists them ------------------------------------------------

ITEM_STATES = ("open", "labeled", "skipped", "done")


def items_in_state(project, state=None):
    """open: still served to annotators; labeled: at least one label; skipped: only skipped so
    far; done: has all the answers it needs."""
    items = Item.objects.filter(project=project)
    if state == "open":
        return items.filter(done=False)
    if state == "labeled":
        return items.filter(label_count__gt=0)
    if state == "skipped":
        live_skip = Annotation.objects.filter(item=OuterRef("pk"), undone=False, skipped=True)
        return items.filter(label_count=0).filter(Exists(live_skip))
    if state == "done":
        return items.filter(done=True)
    return items


def predicted_pool_indexes(current, *, column=None, low=None, high=None):
    """Sorted pool indexes whose predicted class is `column` and whose confidence (the top
    probability) lies in [low, high]: decided on the probability array, (N, C)."""
    probs = np.asarray(current.probs)  # (N, C)
    keep = np.ones(len(current.pool_index), dtype=bool)
    if column is not None:
        keep &= probs.argmax(axis=1) == column
    if low is not None or high is not None:
        confidence = probs.max(axis=1)  # (N,)
        if low is not None:
            keep &= confidence >= low
        if high is not None:
            keep &= confidence <= high
    return np.asarray(current.pool_index)[keep]


class ItemSelection:
    """Items chosen by pool index, in pool order, sliceable like a queryset so that the
    paginator fetches only one page of rows."""

    def __init__(self, queryset, pool_indexes):
        self.queryset = queryset
        self.pool_indexes = pool_indexes

    def __len__(self):
        return len(self.pool_indexes)

    def __getitem__(self, key):
        wanted = [int(i) for i in self.pool_indexes[key]]
        return list(self.queryset.filter(pool_index__in=wanted).order_by("pool_index"))


def select_items(project, *, state=None, predicted=None, min_confidence=None, max_confidence=None, current=None):
    """Items in a state, optionally those the current model predicts as class `predicted`
    with a confidence in range: a queryset, or an ItemSelection when the model decides.
    Items the model has not scored yet never match a prediction filter."""
    items = items_in_state(project, state).order_by("pool_index")
    label = find_class(project, predicted) if predicted else None
    if label is None and min_confidence is None and max_confidence is None:
        return items
    if current is None or (label is not None and label.name not in current.classes):
        return items.none()
    column = current.classes.index(label.name) if label is not None else None
    chosen = predicted_pool_indexes(current, column=column, low=min_confidence, high=max_confidence)
    in_state = np.fromiter(items.values_list("pool_index", flat=True), dtype=np.int64)
    return ItemSelection(items, np.intersect1d(chosen, in_state))


def version_accuracies(project):
    """{model version id: audit accuracy} of the guesses each version made on audit items."""
    by_version = {}
    for answer in audit_answers(project):
        by_version.setdefault(answer[1], []).append(answer)
    return {version: audit_accuracy(project, answers) for version, answers in by_version.items()}


# --- label import ------------------------------------------------------------------------------------


@dataclass
class LabelRow:
    line: int
    file: str
    label: str
    status: str = ""
    reason: str = ""
    item: int | None = None

    def as_dict(self):
        return {
            "line": self.line, "file": self.file, "label": self.label,
            "status": self.status, "reason": self.reason, "item": self.item,
        }


def read_label_csv(upload):
    """The data rows of a `file,class` CSV (bytes or a file), or Invalid for a file that cannot
    be used at all; row-level problems are left to the rows (status bad_row)."""
    data = upload if isinstance(upload, bytes) else upload.read(LABEL_IMPORT_MAX_BYTES + 1)
    if len(data) > LABEL_IMPORT_MAX_BYTES:
        raise Invalid(
            f"The CSV is larger than {LABEL_IMPORT_MAX_BYTES // (1024 * 1024)} MB. Split it into smaller files."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(
            "The file is not UTF-8 text. Save the CSV as UTF-8 (in Excel: “CSV UTF-8”) and upload it again."
        ) from None
    if "\x00" in text:
        raise Invalid("The file is not a text CSV. Upload a CSV with the header file,class.")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise Invalid("The CSV is empty. Its first line must be the header file,class.")
        columns = [cell.strip().lower() for cell in header]
        if "file" not in columns or "class" not in columns:
            raise Invalid(
                "The first line must be the header file,class (the image's file name or content hash, "
                "then its class)."
            )
        at_file, at_class = columns.index("file"), columns.index("class")
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= LABEL_IMPORT_MAX_ROWS:
                raise Invalid(f"The CSV has more than {LABEL_IMPORT_MAX_ROWS} rows. Split it into smaller files.")
            row = LabelRow(reader.line_num, "", "")
            if len(cells) <= max(at_file, at_class):
                row.file = cells[at_file].strip()[:255] if len(cells) > at_file else ""
                row.status, row.reason = "bad_row", "The row has fewer columns than the header."
            else:
                row.file, row.label = cells[at_file].strip(), cells[at_class].strip()
                row.status, row.reason = _row_problem(row)
            rows.append(row)
    except csv.Error as exc:
        raise Invalid(
            f"Line {reader.line_num} cannot be read as CSV ({exc}). Fix the file and upload it again."
        ) from None
    if not rows:
        raise Invalid("The CSV has a header but no rows. Add one line per image: file name, class.")
    return rows


def _row_problem(row):
    if not row.file or not row.label:
        return "bad_row", "The row needs both a file name and a class."
    if len(row.file) > 255:
        row.file = row.file[:255]
        return "bad_row", "The file name is longer than 255 characters."
    if len(row.label) > 100:
        row.label = row.label[:100]
        return "bad_row", "The class name is longer than 100 characters."
    return "", ""


def _items_named(project, rows):
    """{file column value: [item pk, ...]}: by content hash, else by original name, else by the
    name's last path part (a CSV written with folders)."""
    values = {row.file for row in rows if not row.status}
    basenames = {v: PurePosixPath(v.replace("\\", "/")).name for v in values}
    hashes = {v.lower() for v in values if re.fullmatch(r"[0-9a-fA-F]{64}", v)}
    items = Item.objects.filter(project=project)
    by_hash, by_name = {}, {}
    for chunk in _chunks(hashes):
        by_hash.update(items.filter(content_hash__in=chunk).values_list("content_hash", "pk"))
    for chunk in _chunks(set(values) | set(basenames.values())):
        for name, pk in items.filter(original_name__in=chunk).values_list("original_name", "pk"):
            by_name.setdefault(name, []).append(pk)
    found = {}
    for value in values:
        if value.lower() in by_hash:
            found[value] = [by_hash[value.lower()]]
        else:
            found[value] = by_name.get(value) or by_name.get(basenames[value], [])
    return found


def _match_rows(project, rows):
    """Set each row's item and class, or its unknown_file / unknown_class outcome."""
    classes = project.ordered_classes()
    found = _items_named(project, rows)
    labels = {}
    for row in rows:
        if row.status:
            continue
        pks = found.get(row.file, [])
        if not pks:
            row.status, row.reason = "unknown_file", "No image in this project has this file name or content hash."
            continue
        if len(pks) > 1:
            row.status = "unknown_file"
            row.reason = f"{len(pks)} images in this project have this file name; use the content hash to say which."
            continue
        try:
            labels[row.line] = find_class(project, row.label, classes=classes)
        except Invalid as exc:
            row.status, row.reason = "unknown_class", exc.message
            continue
        row.item = pks[0]
    return labels


def _free_import_keys(user, item_ids):
    """An idempotency key per item: the one the folder import uses, unless the user already
    has that key (an import that was later deleted), then a fresh one."""
    keys = {pk: f"import:{pk}" for pk in item_ids}
    taken = set()
    for chunk in _chunks(keys.values()):
        taken.update(Annotation.objects.filter(annotator=user, idempotency_key__in=chunk).values_list(
            "idempotency_key", flat=True))
    return {pk: key if key not in taken else f"{key}:{uuid.uuid4().hex[:12]}" for pk, key in keys.items()}


def import_labels(project, user, upload):
    """Existing labels from a `file,class` CSV become answers of `user` with source=import, as
    the folder import makes them. Items that already have a label (an earlier import of the
    same CSV, say) are left alone, so importing twice creates nothing twice. Returns the
    counts per outcome and the outcome of every row; a file that cannot be read writes nothing."""
    rows = read_label_csv(upload)
    labels = _match_rows(project, rows)
    with transaction.atomic():
        _lock_project_row(project)
        _import_matched(project, user, [row for row in rows if row.item and not row.status], labels)
    counts = dict.fromkeys(LABEL_IMPORT_STATUSES, 0)
    for row in rows:
        counts[row.status] += 1
    return {**counts, "rows": [row.as_dict() for row in rows]}


def _import_matched(project, user, rows, labels):
    item_ids = sorted({row.item for row in rows})
    items = {}
    for chunk in _chunks(item_ids):
        locked = Item.objects.filter(pk__in=chunk).order_by("pk").select_for_update()
        items.update((item.pk, item) for item in locked)
    answered = {}  # item id -> the reason it is not imported
    for chunk in _chunks(item_ids):
        live = Annotation.objects.filter(item_id__in=chunk, undone=False).select_related("label", "annotator")
        for a in live.order_by("id"):
            if not a.skipped:
                answered[a.item_id] = f"Already labeled as {a.label.name!r} by {a.annotator.get_username()}."
            elif a.annotator_id == user.pk:
                answered.setdefault(a.item_id, "You skipped this image, so its label was not imported.")
    keys = _free_import_keys(user, item_ids)
    new, first_line = [], {}
    for row in rows:
        if row.item in first_line:
            row.status, row.reason = "already_labeled", f"Line {first_line[row.item]} already labels this image."
        elif row.item in answered:
            row.status, row.reason = "already_labeled", answered[row.item]
        else:
            first_line[row.item] = row.line
            row.status = "imported"
            new.append(Annotation(
                item_id=row.item, annotator=user, label=labels[row.line],
                source=Annotation.Source.IMPORT, idempotency_key=keys[row.item],
            ))
    Annotation.objects.bulk_create(new)
    changed = [items[a.item_id] for a in new]
    for item in changed:
        item.label_count += 1
        item.done = item.label_count >= project.annotations_per_item
    Item.objects.bulk_update(changed, ["label_count", "done"], batch_size=_CHUNK)
    done = [item.pk for item in changed if item.done]
    for chunk in _chunks(done):
        Lease.objects.filter(item_id__in=chunk).delete()
