"""Owners' corrections of answers that stand: relabel or delete an answer, and settle a
suspect label from the dashboard. Every change keeps its history (AnnotationChange)."""
from django.db import transaction
from django.utils import timezone

from annotator.access import Conflict, Invalid, NotFound
from annotator.labeling.answers import withdraw
from annotator.models import Annotation, AnnotationChange, Item
from annotator.projects.classes import find_class


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
        withdraw(annotation, item, project)
        AnnotationChange.objects.create(
            annotation=annotation,
            changed_by=by,
            action=AnnotationChange.Action.DELETE,
            old_label=annotation.label.name if annotation.label_id else "",
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
