"""Owners' corrections of answers that stand: relabel or delete an answer, and settle a
suspect label from the dashboard. Every change keeps its history (AnnotationChange)."""
from django.db import transaction
from django.utils import timezone

from annotator.access import Conflict, Invalid, NotFound
from annotator.labeling.answers import withdraw
from annotator.models import Annotation, AnnotationChange, AnnotationLabel, Item
from annotator.projects.classes import find_class


def _annotation_for_update(project, annotation_id):
    annotation = Annotation.objects.select_for_update().filter(item__project=project, pk=annotation_id).first()
    if annotation is None:
        raise NotFound(f"Annotation {annotation_id} is not in this project.")
    if annotation.undone:
        raise Conflict("This answer was deleted (or undone by its annotator), so it can no longer be changed.")
    return annotation


def set_text(names):
    """A multi-label answer's classes as its history records them: "{cat, dog}", "{}" for none
    (an empty string stays what it always was: a skip, or no new class after a delete)."""
    return "{" + ", ".join(names) + "}"


def answer_text(annotation):
    """The answer's class, or its set of classes, as the history records it ("" for a skip)."""
    if annotation.skipped:
        return ""
    if annotation.label_id:
        return annotation.label.name
    return set_text(c.name for c in sorted(annotation.labels.all(), key=lambda c: (c.order, c.pk)))


def correct_annotation(project, annotation_id, label, *, by, labels=None):
    """Give an answer another class (or, in a multi-label project, another set of classes:
    `labels`), keeping the old one in its history. A skip has no class to correct."""
    with transaction.atomic():
        annotation = _annotation_for_update(project, annotation_id)
        if annotation.skipped:
            raise Invalid("This answer is a skip, so it has no class to correct. Label the image instead.")
        if project.multi_label or labels is not None:
            return _correct_set(project, annotation, label, labels, by)
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


def _correct_set(project, annotation, label, labels, by):
    if not project.multi_label:
        raise Invalid("This project takes one class per image: send the right class in 'label', not 'labels'.")
    if label is not None or labels is None:
        raise Invalid("This project is multi-label: send the right classes as a list in 'labels' (an empty "
                      "list means none applies).")
    if len(set(labels)) != len(labels):
        raise Invalid("A class appears twice in 'labels'.")
    chosen = sorted((find_class(project, name) for name in labels), key=lambda c: (c.order, c.pk))
    old = answer_text(annotation)
    new = set_text(c.name for c in chosen)
    if old == new:
        return annotation
    AnnotationLabel.objects.filter(annotation=annotation).delete()
    AnnotationLabel.objects.bulk_create(AnnotationLabel(annotation=annotation, label=c) for c in chosen)
    AnnotationChange.objects.create(annotation=annotation, changed_by=by, action=AnnotationChange.Action.CORRECT,
                                    old_label=old, new_label=new)
    return annotation


def delete_annotation(project, annotation_id, *, by):
    """Mark an answer undone (never a hard delete), update its item as undo_last does, and
    record who did it."""
    with transaction.atomic():
        annotation = _annotation_for_update(project, annotation_id)
        item = Item.objects.select_for_update().get(pk=annotation.item_id)
        withdraw(annotation, item, project)
        AnnotationChange.objects.create(
            annotation=annotation,
            changed_by=by,
            action=AnnotationChange.Action.DELETE,
            old_label=answer_text(annotation),
        )
    return annotation


def review_item(project, item_id, *, by, label=None):
    """An owner settles a suspect label: `label` None keeps the labels as they are, a class
    name relabels every live label of the item to it (each change in the answer's history).
    Either way the item is marked reviewed and leaves the suspect list."""
    with transaction.atomic():
        item = Item.objects.select_for_update().filter(project=project, pk=item_id).first()
        if item is None:
            raise NotFound(f"Item {item_id} is not in this project.")
        live = list(
            Annotation.objects.select_for_update(of=("self",)).select_related("label")
            .filter(item=item, undone=False, skipped=False)
        )
        if not live:
            raise Conflict("This image has no live label to review (its labels were deleted or undone).")
        changed = 0
        if label is not None and project.multi_label:
            raise Invalid("This project is multi-label: correct each answer's set with PATCH "
                          "/api/projects/<id>/annotations/<annotation id>/ and 'labels', then keep the item.")
        if label is not None:
            new = find_class(project, label)
            for annotation in live:
                if annotation.label_id == new.pk:
                    continue
                old = annotation.label.name
                annotation.label = new
                annotation.save(update_fields=["label"])
                AnnotationChange.objects.create(annotation=annotation, changed_by=by,
                                                action=AnnotationChange.Action.CORRECT,
                                                old_label=old, new_label=new.name)
                changed += 1
        item.reviewed_at, item.reviewed_by = timezone.now(), by
        item.save(update_fields=["reviewed_at", "reviewed_by"])
    return {"item": item.pk, "changed": changed, "label": new.name if label is not None else None}
