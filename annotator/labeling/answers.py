"""Answers: submitting one (idempotent by key), submitting one and leasing the next item in
one call (the labeling page), and undoing the caller's last answer."""
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from annotator.access import Conflict, Invalid
from annotator.labeling.leasing import lease_next
from annotator.models import Annotation, Item, LabelClass, Lease


@dataclass
class SubmitResult:
    annotation: Annotation
    created: bool


def _fingerprint(item_id, label_name, skip):
    body = json.dumps({"item": int(item_id), "label": None if skip else label_name, "skip": bool(skip)})
    return hashlib.sha256(body.encode()).hexdigest()


def _replay(fingerprint, existing):
    """The stored answer of this key (`existing`, or None) as a replay, if it is the same answer."""
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise Conflict(
            "This idempotency key was already used for a different answer. "
            "Send a new key for a new answer."
        )
    return SubmitResult(existing, created=False)


def _stored(user, key):
    return Annotation.objects.filter(annotator=user, idempotency_key=key).select_related("label").first()


def submit_annotation(project, user, *, item_id, label=None, skip=False, idempotency_key, duration_ms=None):
    """Store the user's answer (a class name, or a skip) for one item, exactly once per key.

    One transaction, with the item's row locked: the user's answers with this key or on this
    item are read in one query (a retry is answered with the stored answer), then the answer
    is inserted without a savepoint. A concurrent request that got in first (the same key for
    another item, or a second answer on this item) makes the insert fail; the transaction is
    then rolled back whole and the stored answer decides: a replay, or a conflict."""
    key = (idempotency_key or "").strip()
    if not key or len(key) > 100:
        raise Invalid("idempotency_key is required (1-100 characters): a fresh random string per answer.")
    if not skip and not label:
        raise Invalid("Give either a class name in 'label' or 'skip': true.")
    if skip and label:
        raise Invalid("An answer is either a class or a skip, not both.")
    fingerprint = _fingerprint(item_id, label, skip)
    try:
        return _store(project, user, item_id, label, skip, key, fingerprint, duration_ms)
    except IntegrityError:
        replay = _replay(fingerprint, _stored(user, key))
        if replay:
            return replay
        raise Conflict("You already answered this item. Undo your answer to change it.") from None


@transaction.atomic
def _store(project, user, item_id, label, skip, key, fingerprint, duration_ms):
    now = timezone.now()
    item = Item.objects.select_for_update().filter(project=project, pk=item_id).first()
    if item is None:
        replay = _replay(fingerprint, _stored(user, key))  # e.g. the item deleted since
        if replay:
            return replay
        raise Invalid(f"Item {item_id} is not in this project.")
    mine = list(Annotation.objects.filter(annotator=user)
                .filter(Q(idempotency_key=key) | Q(item=item, undone=False)).select_related("label"))
    replay = _replay(fingerprint, next((a for a in mine if a.idempotency_key == key), None))
    if replay:
        return replay
    label_obj = None
    if not skip:
        label_obj = LabelClass.objects.filter(project=project, name=label).first()
        if label_obj is None:
            raise Invalid(f"Unknown class {label!r}. This project's classes are: {', '.join(project.class_names())}.")
    if mine:  # not this key's: a live answer on the item
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
    if not skip:
        item.label_count += 1
        item.done = item.label_count >= project.annotations_per_item
        item.save(update_fields=["label_count", "done"])
    if lease is not None:
        lease.delete()
    return SubmitResult(annotation, created=True)


@dataclass
class AnswerAndNext:
    submitted: SubmitResult
    next: Lease | None  # the next item's lease, or None when nothing is available


def answer_and_next(project, user, *, item_id, label=None, skip=False, idempotency_key, duration_ms=None, exclude=()):
    """Store the answer (as submit_annotation does, replays included), then lease the next
    item for the caller, leaving out the items in `exclude` (those the caller still holds on
    screen). A refused answer raises as submit_annotation does and leases nothing."""
    submitted = submit_annotation(
        project, user, item_id=item_id, label=label, skip=skip, idempotency_key=idempotency_key, duration_ms=duration_ms
    )
    return AnswerAndNext(submitted, lease_next(project, user, exclude=exclude))


def withdraw(annotation, item, project):
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
        withdraw(annotation, item, project)
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
