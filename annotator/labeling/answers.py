"""Answers: submitting one (idempotent by key), submitting one and leasing the next item in
one call (the labeling page), and undoing the caller's last answer."""
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from annotator.access import Conflict, Invalid
from annotator.db import columns
from annotator.labeling.leasing import lease_locked, lease_next, lock_labeler
from annotator.models import Annotation, AnnotationLabel, Item, LabelClass, Lease


@dataclass
class SubmitResult:
    annotation: Annotation
    created: bool


def _fingerprint(item_id, label_name, skip, labels=None, unsure=False):
    body = {"item": int(item_id), "label": None if skip else label_name, "skip": bool(skip)}
    if labels is not None:  # multi-label answers (and unsure ones) add their fields, so the
        body["labels"] = sorted(labels)  # fingerprints of single-label answers stay as stored
    if unsure:
        body["unsure"] = True
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


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


def check_answer(project, label, labels, skip, unsure):
    """The answer's shape for this project; returns (label, labels, skip) normalised. "Unsure"
    is stored as a skip with its flag."""
    if unsure:
        if label or labels:
            raise Invalid("An unsure answer carries no class: send 'unsure': true alone.")
        if skip:
            raise Invalid("An answer is either a skip or unsure, not both.")
        return None, None, True
    if project.multi_label:
        if label:
            raise Invalid("This project is multi-label: send the classes as a list in 'labels' (an empty list "
                          "means none applies), not 'label'.")
        if skip and labels:
            raise Invalid("An answer is either a set of classes or a skip, not both.")
        if not skip and labels is None:
            raise Invalid("Give the classes that apply in 'labels' (an empty list: none applies), or 'skip': true.")
        if labels is not None and len(set(labels)) != len(labels):
            raise Invalid("A class appears twice in 'labels'.")
        return None, (None if skip else list(labels)), skip
    if labels is not None:
        raise Invalid("This project takes one class per image: send it in 'label', not 'labels'.")
    if not skip and not label:
        raise Invalid("Give either a class name in 'label' or 'skip': true.")
    if skip and label:
        raise Invalid("An answer is either a class or a skip, not both.")
    return label, None, skip


def classes_named(project, names):
    """The project's classes with these names, in the given order; an unknown name is refused."""
    found = {c.name: c for c in LabelClass.objects.raw(  # hand-written: every answer asks
        f"SELECT {_CLASS_COLUMNS} FROM {LabelClass._meta.db_table} WHERE project_id = %s AND name IN ({', '.join(['%s'] * len(names))})",
        [project.pk, *names])} if names else {}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise Invalid(f"Unknown class {unknown[0]!r}. This project's classes are: {', '.join(project.class_names())}.")
    return [found[n] for n in names]


def _stored(user, key):
    return Annotation.objects.filter(annotator=user, idempotency_key=key).select_related("label").first()


def submit_annotation(project, user, *, item_id, label=None, labels=None, skip=False, unsure=False,
                      idempotency_key, duration_ms=None):
    """Store the user's answer for one item, exactly once per key: a class name (`label`), a
    list of class names (`labels`, multi-label projects), a skip, or `unsure` (a skip that sends
    the item to review).

    One transaction, with the item's row locked: the user's answers with this key or on this
    item are read in one query (a retry is answered with the stored answer), then the answer
    is inserted without a savepoint. A concurrent request that got in first (the same key for
    another item, or a second answer on this item) makes the insert fail; the transaction is
    then rolled back whole and the stored answer decides: a replay, or a conflict."""
    key, answer, fingerprint = _checked(project, item_id, label, labels, skip, unsure, idempotency_key)
    try:
        with transaction.atomic():
            return _store(project, user, item_id, answer, key, fingerprint, duration_ms)
    except IntegrityError:
        return _after_race(user, key, fingerprint)


def _checked(project, item_id, label, labels, skip, unsure, idempotency_key):
    """(key, answer, fingerprint) of a well-formed answer, or Invalid."""
    key = (idempotency_key or "").strip()
    if not key or len(key) > 100:
        raise Invalid("idempotency_key is required (1-100 characters): a fresh random string per answer.")
    label, labels, skip = check_answer(project, label, labels, skip, unsure)
    fingerprint = _fingerprint(item_id, label, skip, labels, unsure)
    return key, (label, labels, skip, bool(unsure)), fingerprint


def _after_race(user, key, fingerprint):
    """A concurrent request stored its answer first (the insert failed, the transaction was
    rolled back): the stored answer of this key, if it is the same answer, else a conflict."""
    replay = _replay(fingerprint, _stored(user, key))
    if replay:
        return replay
    raise Conflict("You already answered this item. Undo your answer to change it.") from None


def _store(project, user, item_id, answer, key, fingerprint, duration_ms):
    """The answer's work, in the caller's transaction (no savepoint of its own)."""
    label, labels, skip, unsure = answer
    now = timezone.now()
    item = _locked_item(project, item_id)
    if item is None:
        replay = _replay(fingerprint, _stored(user, key))  # e.g. the item deleted since
        if replay:
            return replay
        raise Invalid(f"Item {item_id} is not in this project.")
    mine = _mine(user, key, item)
    replay = _replay(fingerprint, next((a for a in mine if a.idempotency_key == key), None))
    if replay:
        return replay
    label_obj = classes_named(project, [label])[0] if label is not None else None
    chosen = classes_named(project, labels) if labels else []
    if mine:  # not this key's: a live answer on the item
        raise Conflict("You already answered this item. Undo your answer to change it.")
    lease = _take_lease(item, user)
    holds_live_lease = lease is not None and lease.expires_at > now
    if not skip and not holds_live_lease:
        others = Lease.objects.filter(item=item, expires_at__gt=now).exclude(user=user).count()
        if item.done or item.label_count + others >= project.annotations_per_item:
            raise Conflict(
                f"Your lease on this item expired and it has since been labeled or taken by another "
                f"annotator, so your answer ({label if label is not None else ', '.join(labels) or 'none'}) "
                "was not saved."
            )
    annotation = Annotation.objects.create(
        item=item,
        annotator=user,
        label=label_obj,
        skipped=skip,
        unsure=unsure,
        idempotency_key=key,
        request_fingerprint=fingerprint,
        duration_ms=duration_ms,
        suggestion=lease.suggestion if lease else None,
        model_version_id=lease.model_version_id if lease else None,
        is_audit=lease.is_audit if lease else False,
    )
    AnnotationLabel.objects.bulk_create(AnnotationLabel(annotation=annotation, label=c) for c in chosen)
    if not skip:
        item.label_count += 1
        item.done = item.label_count >= project.annotations_per_item
        item.save(update_fields=["label_count", "done"])
    return SubmitResult(annotation, created=True)


# The answer's hot statements are hand-written, as the lease claim's (leasing.py): the ORM's
# building of them was a large part of a labeling request's CPU.
_ITEM = Item._meta.db_table
_ANSWER = Annotation._meta.db_table
_ITEM_COLUMNS = columns(Item)
_CLASS_COLUMNS = columns(LabelClass)


def _locked_item(project, item_id):
    """The project's item `item_id`, its row locked (None if there is no such item)."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    found = list(Item.objects.raw(f"SELECT {_ITEM_COLUMNS} FROM {_ITEM} WHERE id = %s AND project_id = %s{lock}",
                                  [item_id, project.pk]))
    return found[0] if found else None


def _mine(user, key, item):
    """The user's answers with this key or live on this item: a cheap look first (usually
    there are none), the full rows with their classes only when there are."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {_ANSWER} WHERE annotator_id = %s"
                       f" AND (idempotency_key = %s OR (item_id = %s AND NOT undone)) LIMIT 1",
                       [user.pk, key, item.pk])
        if cursor.fetchone() is None:
            return []
    return list(Annotation.objects.filter(annotator=user)
                .filter(Q(idempotency_key=key) | Q(item=item, undone=False)).select_related("label"))


def _take_lease(item, user):
    """Delete the user's lease on the item and return it (None without one): one statement
    (DELETE ... RETURNING) instead of a read and a delete. A refused answer raises afterwards
    and its transaction is rolled back, lease included."""
    table = Lease._meta.db_table
    taken = list(Lease.objects.raw(f"DELETE FROM {table} WHERE item_id = %s AND user_id = %s RETURNING *",
                                   [item.pk, user.pk]))
    return taken[0] if taken else None


@dataclass
class AnswerAndNext:
    submitted: SubmitResult
    next: Lease | None  # the next item's lease, or None when nothing is available


def answer_and_next(project, user, *, item_id, exclude=(), label=None, labels=None, skip=False, unsure=False,
                    idempotency_key, duration_ms=None):
    """Store the answer (as submit_annotation does, replays included), then lease the next item
    for the caller, leaving out the items in `exclude` (those the caller still holds on
    screen). A refused answer raises as submit_annotation does and leases nothing.

    One transaction for both (one commit instead of two), which takes the locks in
    lease_next's order: the caller's membership row first (lock_labeler), then the answered
    item's row, then the claimed item's. If a concurrent request stored this answer first,
    the insert fails, everything is rolled back, and the replay (or conflict) is decided as
    submit_annotation decides it, with the lease taken in a transaction of its own."""
    key, answer, fingerprint = _checked(project, item_id, label, labels, skip, unsure, idempotency_key)
    try:
        with transaction.atomic():
            lock_labeler(project, user)
            submitted = _store(project, user, item_id, answer, key, fingerprint, duration_ms)
            return AnswerAndNext(submitted, lease_locked(project, user, exclude=exclude))
    except IntegrityError:
        submitted = _after_race(user, key, fingerprint)
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
