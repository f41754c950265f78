"""The project dashboard's numbers: progress, labels per class, per annotator their labels,
skips, median answer time and agreement with the others. `summary` adds the model's side
(annotator.dashboard.model_side).

Every number is aggregated by the database (GROUP BY, conditional COUNT, window functions, a
self-join); nothing loads the pool's rows into Python, so the page stays fast on a
100,000-item project. What comes back to Python is one row per class, a few rows per
annotator, and one row of counts. The queries run the same on SQLite (3.30 or newer, for
FILTER and window functions) and PostgreSQL.

"Live" answers are those not undone (or deleted by an owner). An item's `label_count` is
its number of live labels, kept in the same transaction as every answer, undo and
correction (annotator.labeling), so progress counts read the item table alone.
"""
from django.db.models import Count, Exists, F, FilteredRelation, OuterRef, Q, Window
from django.db.models.functions import RowNumber

from annotator.models import Annotation, AnnotationLabel, Item, LabelClass


def live_answers(project):
    return Annotation.objects.filter(item__project=project, undone=False)


def progress(project):
    """How far the pool is: two queries over the project's items.

    items: all images; labeled: at least one live label; skipped: live skips only, no live
    label; done: has all the labels it needs (annotations per item), so no longer served;
    remaining: not done; in_progress: labeled but needs more labels; untouched: no live
    answer at all; multi_labeled: two or more live labels (the items agreement is measured on).
    """
    items = Item.objects.filter(project=project)
    counts = items.aggregate(
        items=Count("pk"),
        labeled=Count("pk", filter=Q(label_count__gt=0)),
        done=Count("pk", filter=Q(done=True)),
        multi_labeled=Count("pk", filter=Q(label_count__gte=2)),
    )
    # A query of its own: in WHERE, PostgreSQL plans EXISTS as a hash semi-join; inside the
    # FILTER of the count above it is a per-row subplan whose cost estimate switches on JIT
    # compilation, which alone took 110 ms on 100,000 items.
    live_skip = Annotation.objects.filter(item=OuterRef("pk"), undone=False, skipped=True)
    counts["skipped"] = items.filter(label_count=0).filter(Exists(live_skip)).count()
    counts["remaining"] = counts["items"] - counts["done"]
    counts["in_progress"] = counts["labeled"] - counts["done"]
    counts["untouched"] = counts["items"] - counts["labeled"] - counts["skipped"]
    return counts


def per_class(project):
    """[(class name, live labels)] in the project's class order: one GROUP BY query. In a
    multi-label project every class of a set counts (an answer {cat, dog} counts once for
    each; "none applies" for none)."""
    answers = "multi_annotations" if project.multi_label else "annotations"
    rows = (
        LabelClass.objects.filter(project=project)
        .annotate(n=Count(answers, filter=Q(**{f"{answers}__undone": False})))
        .order_by("order", "id")
        .values_list("name", "n")
    )
    return list(rows)


def answer_counts(project):
    """{annotator id: {username, labels, skips, imported}} over live answers: one GROUP BY
    query. `imported` counts the labels that came with an import (part of `labels`)."""
    rows = (
        live_answers(project)
        .values("annotator_id", "annotator__username")
        .annotate(
            labels=Count("pk", filter=Q(skipped=False)),
            skips=Count("pk", filter=Q(skipped=True)),
            imported=Count("pk", filter=Q(source=Annotation.Source.IMPORT)),
        )
        .order_by()
    )
    return {
        row["annotator_id"]: {
            "username": row["annotator__username"],
            "labels": row["labels"],
            "skips": row["skips"],
            "imported": row["imported"],
        }
        for row in rows
    }


def median_label_ms(project):
    """{annotator id: median duration_ms of their live labels}, computed in the database:
    each annotator's timed labels are numbered in duration order (ROW_NUMBER over a
    partition), and only the one or two middle rows per annotator come back, whose mean is
    the median. Labels without a time (imports, clients that send none) are left out."""
    middle = (
        live_answers(project)
        .filter(skipped=False, duration_ms__isnull=False)
        .annotate(
            position=Window(RowNumber(), partition_by=F("annotator_id"), order_by=F("duration_ms").asc()),
            total=Window(Count("pk"), partition_by=F("annotator_id")),
        )
        # Positions (n+1)//2 .. (n+2)//2: the middle row for odd n, the two middle rows for even n.
        .filter(position__gte=(F("total") + 1) / 2, position__lte=(F("total") + 2) / 2)
        .order_by()
        .values_list("annotator_id", "duration_ms")
    )
    middles = {}
    for annotator_id, ms in middle:
        middles.setdefault(annotator_id, []).append(ms)
    return {annotator_id: sum(values) / len(values) for annotator_id, values in middles.items()}


def agreement_pairs(project):
    """{annotator id: (pairs, agreeing pairs)}: for each live label, the live labels other
    annotators gave the same item (a self-join of answers on the item), and how many of them
    are the same class. Only items with two or more labels contribute. A multi-label
    project's are `set_agreement_pairs`'."""
    if project.multi_label:
        return set_agreement_pairs(project)
    # "Another annotator" is written < or >: a negated condition (~Q) on this many-valued
    # relation would become a subquery instead of part of the join.
    peer = FilteredRelation(
        "item__annotations",
        condition=Q(item__annotations__undone=False, item__annotations__skipped=False)
        & (Q(item__annotations__annotator__lt=F("annotator")) | Q(item__annotations__annotator__gt=F("annotator"))),
    )
    rows = (
        live_answers(project)
        .filter(skipped=False, item__label_count__gte=2)
        .annotate(peer=peer)
        .filter(peer__isnull=False)
        .values("annotator_id")
        .annotate(pairs=Count("peer"), agreeing=Count("peer", filter=Q(peer__label=F("label"))))
        .order_by()
    )
    return {row["annotator_id"]: (row["pairs"], row["agreeing"]) for row in rows}


def set_agreement_pairs(project):
    """{annotator id: (pairs, summed agreement)} of a multi-label project: two answers on an
    item agree by the Jaccard overlap of their sets, |A & B| / |A | B| (1 when both say none
    applies), so "agreeing" is a sum of overlaps and agreement their mean. It reads the sets
    of the items with two or more labels only (two queries)."""
    answers = dict(
        live_answers(project).filter(skipped=False, item__label_count__gte=2).values_list("pk", "annotator_id"))
    items = dict(live_answers(project).filter(pk__in=list(answers)).values_list("pk", "item_id"))
    sets = {pk: set() for pk in answers}
    for annotation_id, label_id in AnnotationLabel.objects.filter(annotation_id__in=list(answers)).values_list(
            "annotation_id", "label_id"):
        sets[annotation_id].add(label_id)
    by_item = {}
    for pk, item_id in items.items():
        by_item.setdefault(item_id, []).append(pk)
    out = {}
    for group in by_item.values():
        for a in group:
            for b in group:
                if answers[a] == answers[b]:
                    continue
                union = sets[a] | sets[b]
                overlap = len(sets[a] & sets[b]) / len(union) if union else 1.0
                pairs, agreeing = out.get(answers[a], (0, 0.0))
                out[answers[a]] = (pairs + 1, agreeing + overlap)
    return out


def _share(part, whole):
    return part / whole if whole else None


def annotators(project):
    """One row per annotator with a live answer, most labels first: labels, skips, imported,
    skip_rate (skips / answers), median_ms (of timed labels), pairs / agreeing / agreement
    (share of their labels' pairings with other annotators' labels on the same item that
    name the same class), plus the overall pairwise agreement. Three queries."""
    counts = answer_counts(project)
    medians = median_label_ms(project)
    pairs = agreement_pairs(project)
    rows = []
    for annotator_id, row in counts.items():
        n_pairs, n_agreeing = pairs.get(annotator_id, (0, 0))
        answers = row["labels"] + row["skips"]
        rows.append({
            **row,
            "skip_rate": _share(row["skips"], answers),
            "median_ms": medians.get(annotator_id),
            "pairs": n_pairs,
            "agreeing": n_agreeing,
            "agreement": _share(n_agreeing, n_pairs),
        })
    rows.sort(key=lambda r: (-r["labels"], r["username"]))
    # Each unordered pair of labels was counted once from each side.
    total_pairs = sum(p for p, _a in pairs.values()) // 2
    total_agreeing = sum(a for _p, a in pairs.values()) / 2
    if not project.multi_label:
        total_agreeing = int(total_agreeing)
    overall = {"pairs": total_pairs, "agreeing": total_agreeing, "agreement": _share(total_agreeing, total_pairs)}
    return rows, overall


# --- the model: learning curve, pool uncertainty, class balance, confusions, suspect labels ------
#
# Aggregates only: the audit answers are grouped by the number of labels their model had (one
# row per distinct count), versions come back as a few columns (one JSON key, not the whole
# metrics), the pool's histogram and guessed class counts were summarised by the trainer into
# the current version's metrics, and confusions and suspects come from the current version's
# held-out array of the labeled items (NumPy, no rows).


