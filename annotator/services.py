"""Multi-model writes: leasing the next item, submitting and undoing answers, statistics.

Every function here is the one code path shared by the HTML pages and the REST API.
Concurrency: on PostgreSQL the candidate item row is locked with SELECT ... FOR UPDATE SKIP
LOCKED and availability is re-checked in a fresh statement while the lock is held, so two
annotators never lease the same item; on SQLite every transaction is IMMEDIATE (one writer
at a time), which gives the same guarantee.
"""
import hashlib
import json
import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from .models import Annotation, Item, LabelClass, Lease, Membership, Project, Role, default_hotkeys

# The current item and one prefetched item.
MAX_LEASES_PER_USER = 2

LABELING_ROLES = (Role.OWNER, Role.ANNOTATOR)


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
    if not user.is_authenticated:
        raise Http404("No such project.")
    membership = Membership.objects.select_related("project").filter(project_id=pk, user=user).first()
    if membership is None:
        raise Http404("No such project.")
    if roles is not None and membership.role not in roles:
        raise Forbidden(f"Your role in this project is {membership.role}; this needs {' or '.join(roles)}.")
    project = membership.project
    project.current_role = membership.role
    return project


def projects_for_user(user):
    return Project.objects.filter(memberships__user=user)


@transaction.atomic
def create_project(owner, *, name, classes, **options):
    names = [c.strip() for c in classes]
    if not name.strip():
        raise Invalid("A project needs a name.")
    if len(names) < 2:
        raise Invalid("A project needs at least two classes.")
    if any(not n for n in names):
        raise Invalid("Class names cannot be empty.")
    if len(set(names)) != len(names):
        raise Invalid("Class names must be unique.")
    if any(len(n) > 100 for n in names):
        raise Invalid("Class names are limited to 100 characters.")
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
    tried = set()
    for _ in range(10):
        qs = _available_items(project, user, now).exclude(pk__in=tried)
        qs = qs.order_by("?") if audit else qs.order_by("priority", "pool_index")
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


def lease_next(project, user, *, exclude=()):
    """The user's current lease (oldest live one not in `exclude`), refreshed; else a new
    lease on the best available item; None when nothing is available to this user."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.LEASE_SECONDS)
    with transaction.atomic():
        # One lease request per user and project at a time (two tabs), so the cap holds.
        list(Membership.objects.select_for_update().filter(project=project, user=user).values_list("pk"))
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
        return Lease.objects.create(
            project=project, item=item, user=user, expires_at=expires, is_audit=audit, suggestion=None
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
        annotation.undone = True
        annotation.save(update_fields=["undone"])
        if not annotation.skipped:
            item.label_count = max(0, item.label_count - 1)
            item.done = item.label_count >= project.annotations_per_item
            item.save(update_fields=["label_count", "done"])
        # The undone item becomes the only (so the current) lease; the prefetch is re-drawn.
        Lease.objects.filter(project=project, user=user).delete()
        Lease.objects.create(
            project=project,
            item=item,
            user=user,
            expires_at=now + timedelta(seconds=settings.LEASE_SECONDS),
            is_audit=annotation.is_audit,
            suggestion=annotation.suggestion,
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
