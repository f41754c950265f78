"""A reviewer's verdict on an item: accept its answers, or fix its labels.

- accept: the item's live labels stand. Refused when they disagree (say which is right with
  a fix) or when there is no label to accept (an unsure-only item: give its class).
- fix: the item's labels become the reviewer's. Every live label that differs is relabeled,
  each change recorded in the answer's history (AnnotationChange, by the reviewer), so the
  majority the model trains on and the exports write is the fix. An item without a live
  label (unsure or skipped only) gets a `source=review` answer by the reviewer, so it enters
  training. Skips and unsure answers stay as they were (they carry no class).

Either way a Review row keeps the verdict, the labels, why the item was in the queue and a
copy of the answers judged (for each annotator's accuracy), the item is marked reviewed
(`Item.reviewed_at`, so it leaves the review queue and the dashboard's suspects) and the
reviewer's lease on it goes. A reviewer may judge the item they hold, or any unreviewed item
with answers that no other reviewer holds.
"""
import uuid

from django.db import transaction
from django.utils import timezone

from annotator.access import Conflict, Invalid, NotFound
from annotator.dashboard.model_side import suspect_guesses
from annotator.models import Annotation, AnnotationChange, AnnotationLabel, Item, Review, ReviewLease
from annotator.projects.classes import find_class
from annotator.review.queue import answer_names, live_answers, reasons_for

HISTORY_TEXT = 100  # AnnotationChange's label columns


def _history_text(names):
    """A set of class names as AnnotationChange stores it ("{}" for none), cut to fit; the
    whole set is in the Review's copy of the answers."""
    text = names[0] if len(names) == 1 else "{" + ", ".join(names) + "}"
    return text if len(text) <= HISTORY_TEXT else text[:HISTORY_TEXT - 1] + "…"


def _fix_classes(project, label, labels):
    """The fix's classes (LabelClass rows, class order) from `label` or `labels`."""
    classes = project.ordered_classes()
    if project.multi_label:
        if label is not None or labels is None:
            raise Invalid("This project is multi-label: send the classes that apply in 'labels' (an empty list "
                          "means none applies).")
        if len(set(labels)) != len(labels):
            raise Invalid("A class appears twice in 'labels'.")
        chosen = [find_class(project, name, classes=classes) for name in labels]
        return sorted(chosen, key=lambda c: (c.order, c.pk))
    if labels is not None:
        raise Invalid("This project takes one class per image: send the right class in 'label'.")
    if not label:
        raise Invalid("A fix needs the right class in 'label'.")
    return [find_class(project, label, classes=classes)]


def _snapshot(answers):
    return [{"annotation": a.pk, "annotator": a.annotator_id, "username": a.annotator.username,
             "labels": list(names) if (names := answer_names(a)) is not None else None, "unsure": a.unsure}
            for a in answers]


def _relabel(annotation, classes, project, by):
    """Give one live answer the fix's classes, with its history."""
    old = answer_names(annotation)
    new = tuple(sorted(c.name for c in classes)) if project.multi_label else (classes[0].name,)
    if old == new:
        return False
    if project.multi_label:
        AnnotationLabel.objects.filter(annotation=annotation).delete()
        AnnotationLabel.objects.bulk_create(AnnotationLabel(annotation=annotation, label=c) for c in classes)
    else:
        annotation.label = classes[0]
        annotation.save(update_fields=["label"])
    AnnotationChange.objects.create(annotation=annotation, changed_by=by, action=AnnotationChange.Action.CORRECT,
                                    old_label=_history_text(list(old)), new_label=_history_text(list(new)))
    return True


def _review_answer(project, item, classes, by):
    """The reviewer's own answer for an item without a live label; it counts as a label."""
    own = Annotation.objects.filter(item=item, annotator=by, undone=False).first()
    if own is not None:  # the reviewer's own skip or unsure (an owner who also labels): replaced
        own.undone = True
        own.save(update_fields=["undone"])
    annotation = Annotation.objects.create(
        item=item, annotator=by, label=None if project.multi_label else classes[0], source=Annotation.Source.REVIEW,
        idempotency_key=f"review-{uuid.uuid4().hex}",
    )
    if project.multi_label:
        AnnotationLabel.objects.bulk_create(AnnotationLabel(annotation=annotation, label=c) for c in classes)
    item.label_count += 1
    item.done = item.label_count >= project.annotations_per_item
    item.save(update_fields=["label_count", "done"])
    return annotation


def submit_review(project, reviewer, *, item_id, verdict, label=None, labels=None):
    """Record the reviewer's verdict on the item (see the module's docstring); returns the Review."""
    if verdict not in Review.Verdict.values:
        raise Invalid(f"Unknown verdict {verdict!r}: send 'accept' or 'fix'.")
    if verdict == Review.Verdict.ACCEPT and (label is not None or labels is not None):
        raise Invalid("An accept carries no class: it keeps the labels as they are. Send 'fix' to change them.")
    classes = _fix_classes(project, label, labels) if verdict == Review.Verdict.FIX else None
    suspects = suspect_guesses(project)
    now = timezone.now()
    with transaction.atomic():
        item = Item.objects.select_for_update().filter(project=project, pk=item_id).first()
        if item is None:
            raise NotFound(f"Item {item_id} is not in this project.")
        if item.reviewed_at is not None:
            raise Conflict("This image was already reviewed, so it left the review queue. Ask for the next one.")
        lease = ReviewLease.objects.filter(item=item).exclude(reviewer=reviewer).filter(expires_at__gt=now).first()
        if lease is not None:
            raise Conflict("Another reviewer is looking at this image. Ask for the next one.")
        answers = live_answers(item)
        if not answers:
            raise Conflict("This image has no answer to review (its answers were undone or deleted).")
        judged, reasons = _snapshot(answers), reasons_for(project, item, answers, suspects)  # before any change
        given = {names for a in answers if (names := answer_names(a)) is not None}
        if verdict == Review.Verdict.ACCEPT:
            if not given:
                raise Invalid("This image has no label to accept (its answers are unsure or skips): fix it with "
                              "the right class.")
            if len(given) > 1:
                raise Invalid("The answers on this image disagree, so there is no one label to accept: fix it with "
                              "the right class.")
            final = list(next(iter(given)))
        else:
            labeled = [a for a in answers if not a.skipped]
            for annotation in labeled:
                _relabel(annotation, classes, project, reviewer)
            if not labeled:
                _review_answer(project, item, classes, reviewer)
            final = [c.name for c in classes]
        review = Review.objects.create(
            project=project, item=item, reviewer=reviewer, verdict=verdict, labels=final,
            reasons=reasons, answers=judged,
        )
        item.reviewed_at, item.reviewed_by = now, reviewer
        item.save(update_fields=["reviewed_at", "reviewed_by"])
        ReviewLease.objects.filter(item=item).delete()
    return review
