"""Bulk answers: one class (or, in multi-label projects, one set of classes) for many items at
once, chosen on the grid of similar or confidently guessed images (`labeling.candidates`).

All or nothing in one transaction; every answer carries `source=bulk` and the batch's id, so
the batch is undone as one. Bulk answers train the model like any answer, but they are never
audit answers (`is_audit` stays false whatever the caller held), so the audit accuracy, the
dashboard's audit curve and the trainer's held-out scores leave them out: they were picked
because the model was already sure of them, which would flatter it.

Idempotency: the caller's key names the request; each answer stores `<key>/<item id>` as
its own key and the request's fingerprint, so a retry with the same key and body returns the
stored batch, and a different body under the same key is refused.
"""
import hashlib
import json
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from annotator.access import Conflict, Forbidden, Invalid, NotFound
from annotator.labeling.answers import check_answer, classes_named
from annotator.modelloop import predictions
from annotator.models import Annotation, AnnotationLabel, Item, Lease, Role

KEY_MAX = 64  # leaves room for "/<item id>" in the answers' own 100-character keys


@dataclass
class BulkResult:
    batch: str
    created: bool  # False: a replay of a stored batch
    annotations: list  # the batch's answers, in item id order

    @property
    def items(self):
        return [a.item_id for a in self.annotations]

    @property
    def undone(self):
        return all(a.undone for a in self.annotations)


def _fingerprint(items, label, labels):
    body = {"items": sorted(items), "label": label, "labels": None if labels is None else sorted(labels)}
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


def _batch_answers(batch):
    return list(Annotation.objects.filter(batch=batch, source=Annotation.Source.BULK)
                .select_related("label", "annotator").prefetch_related("labels").order_by("item_id"))


def _replay(user, key, items, fingerprint):
    stored = Annotation.objects.filter(annotator=user, idempotency_key=f"{key}/{min(items)}").first()
    if stored is None:
        return None
    if stored.source != Annotation.Source.BULK or stored.request_fingerprint != fingerprint:
        raise Conflict("This idempotency_key was already used for another request. Use a fresh key for a new "
                       "bulk answer, and the same key only to retry the same one.")
    return BulkResult(stored.batch, created=False, annotations=_batch_answers(stored.batch))


def _check_items(items):
    if not isinstance(items, list | tuple) or not items:
        raise Invalid("Give the item ids to label in 'items' (a non-empty list).")
    limit = settings.BULK_MAX_ITEMS
    if len(items) > limit:
        raise Invalid(f"At most {limit} items per bulk answer; this one has {len(items)}. "
                      "Send them in several batches.")
    if len(set(items)) != len(items):
        raise Invalid("An item appears twice in 'items'.")


def _refuse_unavailable(project, user, locked, wanted):
    """All or nothing: a Conflict naming how many items cannot take the caller's answer."""
    missing = sorted(set(wanted) - set(locked))
    if missing:
        raise Invalid(f"{len(missing)} of the items are not in this project (first: {missing[0]}); "
                      "nothing was saved.")
    answered = sorted(Annotation.objects.filter(item_id__in=wanted, annotator=user, undone=False)
                      .values_list("item_id", flat=True))
    if answered:
        raise Conflict(f"You already answered {len(answered)} of these items (first: {answered[0]}); nothing "
                       "was saved. Leave them out, or undo those answers first.")
    now = timezone.now()
    held = {}
    for item_id in (Lease.objects.filter(item_id__in=wanted, expires_at__gt=now).exclude(user=user)
                    .values_list("item_id", flat=True)):
        held[item_id] = held.get(item_id, 0) + 1
    full = sorted(i for i, item in locked.items()
                  if item.done or item.label_count + held.get(i, 0) >= project.annotations_per_item)
    if full:
        raise Conflict(f"{len(full)} of these items are already labeled or held by other annotators (first: "
                       f"{full[0]}); nothing was saved. Reload the grid for the images still open.")


def bulk_answer(project, user, *, items, label=None, labels=None, idempotency_key):
    """Store the same answer (a class name, or a list of class names in a multi-label
    project) for every item in `items`, as one batch, exactly once per key. Returns a
    BulkResult; refuses the whole request (Invalid / Conflict, nothing stored) when any item
    is not in the project, already answered by the caller, or no longer open to them."""
    key = (idempotency_key or "").strip()
    if not key or len(key) > KEY_MAX:
        raise Invalid(f"idempotency_key is required (1-{KEY_MAX} characters): a fresh random string per bulk answer.")
    _check_items(items)
    if not project.multi_label and not label and labels is None:
        raise Invalid("Give the class for the items in 'label'.")
    if project.multi_label and labels is None and not label:
        raise Invalid("Give the classes that apply to the items in 'labels' (an empty list: none applies).")
    label, labels, _skip = check_answer(project, label, labels, False, False)
    items = [int(i) for i in items]
    fingerprint = _fingerprint(items, label, labels)
    replay = _replay(user, key, items, fingerprint)
    if replay:
        return replay
    with transaction.atomic():
        locked = {item.pk: item for item in
                  Item.objects.select_for_update().filter(project=project, pk__in=items).order_by("pk")}
        replay = _replay(user, key, items, fingerprint)  # a concurrent retry may have committed meanwhile
        if replay:
            return replay
        _refuse_unavailable(project, user, locked, items)
        label_obj = classes_named(project, [label])[0] if label is not None else None
        chosen = classes_named(project, labels) if labels else []
        preds = predictions.current(project)
        batch = uuid.uuid4().hex
        rows = [
            Annotation(
                item=locked[i], annotator=user, label=label_obj, source=Annotation.Source.BULK, batch=batch,
                idempotency_key=f"{key}/{i}", request_fingerprint=fingerprint, is_audit=False,
                suggestion=preds.suggestion(locked[i]) if preds else None,
                model_version=preds.version if preds else None,
            )
            for i in sorted(items)
        ]
        try:
            with transaction.atomic():
                created = Annotation.objects.bulk_create(rows)
                AnnotationLabel.objects.bulk_create(
                    AnnotationLabel(annotation=a, label=c) for a in created for c in chosen)
        except IntegrityError:
            replay = _replay(user, key, items, fingerprint)
            if replay:
                return replay
            raise Conflict("Some of these items were answered by you meanwhile (another tab?); nothing was "
                           "saved. Reload the grid.") from None
        Item.objects.filter(pk__in=items).update(label_count=F("label_count") + 1)
        Item.objects.filter(pk__in=items, label_count__gte=project.annotations_per_item).update(done=True)
        Lease.objects.filter(user=user, item_id__in=items).delete()  # answered: nothing left to hold
    return BulkResult(batch, created=True, annotations=_batch_answers(batch))


def undo_batch(project, user, batch):
    """Take back every live answer of the batch at once (its author or a project owner);
    the items get their label counts back. Undoing an undone batch changes nothing."""
    with transaction.atomic():
        answers = list(Annotation.objects.select_for_update()
                       .filter(item__project=project, batch=batch, source=Annotation.Source.BULK))
        if not answers or not batch:
            raise NotFound(f"There is no bulk batch {batch!r} in this project.")
        if answers[0].annotator_id != user.pk and getattr(project, "current_role", None) != Role.OWNER:
            raise Forbidden("Only the person who labeled this batch, or a project owner, can undo it.")
        live = [a for a in answers if not a.undone]
        item_ids = sorted(a.item_id for a in live)
        list(Item.objects.select_for_update().filter(pk__in=item_ids).order_by("pk").values_list("pk"))
        Annotation.objects.filter(pk__in=[a.pk for a in live]).update(undone=True)
        counted = [a.item_id for a in live if not a.skipped]
        Item.objects.filter(pk__in=counted).update(label_count=Greatest(F("label_count") - 1, 0))
        Item.objects.filter(pk__in=counted, label_count__lt=project.annotations_per_item).update(done=False)
    return BulkResult(batch, created=False, annotations=_batch_answers(batch))
