"""Reads about a project's items: progress counts for the labeling page and the API, and the
filters of the item list (state, the model's guess and its confidence)."""
import numpy as np
from django.db.models import Count, Exists, OuterRef

from annotator.models import Annotation, AnnotationLabel, Item
from annotator.projects.classes import find_class


def project_stats(project):
    live = Annotation.objects.filter(item__project=project, undone=False)
    per_class = dict.fromkeys(project.class_names(), 0)
    if project.multi_label:  # each class of a set counts once
        counted = AnnotationLabel.objects.filter(annotation__in=live).values("label__name").annotate(n=Count("id"))
    else:
        counted = live.filter(skipped=False).values("label__name").annotate(n=Count("id"))
    for row in counted.order_by():
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
    probability) lies in [low, high]: decided on the probability array, (N, C). For a
    multi-label version (per-class probabilities) `column` must be in the suggested set
    (p >= 0.5) and the confidence is that class's probability, or without a class the
    chance that the whole suggested set is right."""
    probs = np.asarray(current.probs)  # (N, C)
    keep = np.ones(len(current.pool_index), dtype=bool)
    sets = getattr(current, "multi_label", False)
    if column is not None:
        keep &= probs[:, column] >= 0.5 if sets else probs.argmax(axis=1) == column
    if low is not None or high is not None:
        if sets:
            confidence = probs[:, column] if column is not None else np.where(probs >= 0.5, probs, 1 - probs).prod(1)
        else:
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
