"""What the bulk-labeling grid offers a labeler: the open images the current model most
confidently puts in one class, or the images nearest to one image in the model's kNN graph.

Both read the current model version's files with NumPy (`modelloop.predictions`,
`modelloop.neighbours`) and keep only the images the caller could answer now: not done, not
answered by the caller, and with a free slot once other annotators' live leases are counted
(the caller's own leases do not block: the image on the labeling page may be labeled in bulk).
"""
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotator.access import Invalid
from annotator.modelloop import neighbours, predictions
from annotator.models import Annotation, Item, Lease
from annotator.projects.classes import find_class

CHUNK = 256  # pool rows checked against the database per query


@dataclass
class Candidate:
    item: Item
    score: float  # the class's probability, or the similarity to the chosen image
    suggestion: dict | None  # the model's guess, as the labeling page shows it


@dataclass
class Candidates:
    mode: str  # "label" or "similar"
    candidates: list = field(default_factory=list)
    version: int | None = None  # the model version they come from
    label: str | None = None  # the class asked for ("label" mode)
    anchor: Item | None = None  # the chosen image ("similar" mode)
    detail: str = ""  # why the list is empty or short, for people


def grid_size(value=None):
    """The grid's size: `value` (a query parameter) within BULK_GRID_MIN..BULK_GRID_MAX, or
    BULK_GRID_SIZE. Invalid with the bounds for anything else."""
    if value in (None, ""):
        return settings.BULK_GRID_SIZE
    low, high = settings.BULK_GRID_MIN, settings.BULK_GRID_MAX
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = None
    if size is None or not low <= size <= high:
        raise Invalid(f"size must be a whole number from {low} to {high}; got {value!r}.")
    return size


def open_for(project, user, now=None):
    """The project's items the user could answer now (see the module's docstring)."""
    now = now or timezone.now()
    k = project.annotations_per_item
    items = Item.objects.filter(project=project, done=False).exclude(
        Exists(Annotation.objects.filter(item=OuterRef("pk"), annotator=user, undone=False)))
    others = Lease.objects.filter(item=OuterRef("pk"), expires_at__gt=now).exclude(user=user)
    if k == 1:
        return items.exclude(Exists(others))
    held = others.values("item").annotate(n=Count("id")).values("n")
    return items.annotate(held=Coalesce(Subquery(held), 0)).filter(label_count__lt=k - F("held"))


def _take(project, user, pool_indices, scores, size):
    """The first `size` open items among `pool_indices` (best first), with their scores."""
    eligible = open_for(project, user)
    taken = []
    for start in range(0, len(pool_indices), CHUNK):
        chunk = [int(p) for p in pool_indices[start:start + CHUNK]]
        found = {item.pool_index: item for item in eligible.filter(pool_index__in=chunk)}
        for offset, p in enumerate(chunk):
            if p in found:
                taken.append((found[p], float(scores[start + offset])))
                if len(taken) == size:
                    return taken
    return taken


def _with_guesses(preds, taken):
    return [Candidate(item, round(score, 4), preds.suggestion(item) if preds else None) for item, score in taken]


def top_rows(column, pool_index, m):
    """Rows of the `m` highest values of `column` (ties kept whole at the cut), highest
    first, ties by lower pool index: an exact top list without sorting the whole pool."""
    n = len(column)
    if m >= n:
        rows = np.arange(n)
    else:
        threshold = np.partition(column, n - m)[n - m]
        rows = np.flatnonzero(column >= threshold)
    return rows[np.lexsort((pool_index[rows], -column[rows]))]


def by_class(project, user, label, size):
    """Open images by the current model's probability of class `label`, highest first."""
    wanted = find_class(project, label)
    result = Candidates("label", label=wanted.name)
    preds = predictions.current(project)
    if preds is None:
        result.detail = "The model has no guesses yet: label some images one by one first."
        return result
    result.version = preds.version.number
    if wanted.name not in preds.classes:
        result.detail = (f"The current model was trained before the class {wanted.name!r} existed; "
                         "its next version will rank it.")
        return result
    column = np.asarray(preds.probs[:, preds.classes.index(wanted.name)], dtype=np.float32)
    m, checked, taken = size * 8, 0, []
    while len(taken) < size and checked < len(column):
        rows = top_rows(column, preds.pool_index, m)[checked:]  # an open image is most often near the top
        taken += _take(project, user, preds.pool_index[rows], column[rows], size - len(taken))
        checked += len(rows)
        m *= 8
    result.candidates = _with_guesses(preds, taken)
    if not taken:
        result.detail = f"No open image left that the model puts in {wanted.name!r}."
    return result


def similar_to_item(project, user, item_id, size):
    """The chosen image (when the caller may still answer it) and then its nearest open
    neighbours in the current model's kNN graph, most similar first (two hops when the
    first ring is used up: `modelloop.neighbours.Neighbours.ranked`)."""
    anchor = Item.objects.filter(project=project, pk=item_id).first()
    if anchor is None:
        raise Invalid(f"Item {item_id} is not in this project.")
    result = Candidates("similar", anchor=anchor)
    preds = predictions.current(project)
    graph = neighbours.load(preds.version) if preds is not None else None
    if graph is None:
        result.detail = "The model has no neighbour graph yet: it comes with its next version."
        return result
    result.version = preds.version.number
    near, scores = graph.ranked(anchor.pool_index)
    near = np.concatenate([[anchor.pool_index], near])
    scores = np.concatenate([[1.0], scores])
    result.candidates = _with_guesses(preds, _take(project, user, near, scores, size))
    if not result.candidates:
        result.detail = "Every image near this one is answered or held by other annotators."
    elif graph.row(anchor.pool_index) is None:
        result.detail = "This image is newer than the model: its neighbours come with the next version."
    return result


def for_query(project, user, *, label=None, similar_to=None, size=None):
    """The grid for a request: `label` (a class) or `similar_to` (an item id), one of them."""
    size = grid_size(size)
    if (label in (None, "")) == (similar_to in (None, "")):
        raise Invalid("Give either 'label' (a class) or 'similar_to' (an item id), not both and not neither.")
    if label not in (None, ""):
        return by_class(project, user, label, size)
    try:
        item_id = int(similar_to)
    except (TypeError, ValueError):
        raise Invalid(f"similar_to must be an item id (a whole number); got {similar_to!r}.") from None
    return similar_to_item(project, user, item_id, size)
