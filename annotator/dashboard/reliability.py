"""How far the labels can be trusted: Krippendorff's alpha over the items with two or more
live labels (beside the raw pairwise agreement of annotator.dashboard.progress), and each
annotator's accuracy against the reviewed items.

Alpha (nominal) follows its coincidence-matrix definition (Krippendorff, "Computing
Krippendorff's Alpha-Reliability", 2011): within each unit (an item) with m_u >= 2 pairable
values, every ordered pair of values from different coders adds 1 / (m_u - 1) to the
coincidence o_ck; n_c = sum_k o_ck, n = sum_c n_c, and

    alpha = 1 - D_o / D_e,  D_o = sum_{c != k} o_ck / n,  D_e = sum_{c != k} n_c n_k / (n (n - 1)).

Missing values are simply absent (units with fewer than two values pair nothing). Alpha is 1
for perfect agreement, about 0 for labels given at random, negative below chance; it is
undefined (None) when fewer than two values pair or when every value is the same class
(no expected disagreement). Written here rather than taken from the `krippendorff` package:
it is short, and it works on the value counts per item that one GROUP BY returns, where the
package wants a dense coders x items matrix (mostly empty on a large pool).

Multi-label projects: alpha per class, on the binary "this answer gives the class" (1) or
not (0) over the items with two or more live answers, and the mean over the classes where it
is defined. Both measures read the labels as they stand, after owners' and reviewers' fixes,
like the raw agreement beside them.

Accuracy against review: every Review copies the answers it judged. An answer with a class
(a skip or an unsure answer is not graded) is correct when it gives exactly the reviewed
labels: accept makes every judged label correct, a fix those that already matched it.
"""
from collections import Counter, defaultdict

from django.contrib.auth import get_user_model
from django.db.models import Count

from annotator.models import Annotation, AnnotationLabel, Item, Review


def nominal_alpha(units):
    """(alpha or None, n): Krippendorff's alpha for nominal data over `units`, each a
    {value: how many coders gave it} mapping; n is the number of pairable values."""
    coincidence = defaultdict(float)  # (c, k) -> o_ck
    for counts in units:
        m = sum(counts.values())
        if m < 2:
            continue
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                coincidence[c, k] += n_c * (n_k - (c == k)) / (m - 1)
    totals = Counter()  # n_c
    for (c, _k), o in coincidence.items():
        totals[c] += o
    n = sum(totals.values())
    if n < 2:
        return None, round(n)
    observed = sum(o for (c, k), o in coincidence.items() if c != k) / n
    expected = (n * n - sum(v * v for v in totals.values())) / (n * (n - 1))
    if expected <= 1e-12:
        return None, round(n)
    return 1 - observed / expected, round(n)


def _labeled_twice(project):
    return Item.objects.filter(project=project, label_count__gte=2)


def label_alpha(project):
    """{"alpha", "values", "items", "kind"}: alpha over the project's items with two or more
    live labels ("nominal"; multi-label: "per-class mean", with "per_class")."""
    if project.multi_label:
        return _multi_label_alpha(project)
    units = defaultdict(dict)
    rows = (Annotation.objects.filter(item__in=_labeled_twice(project), undone=False, skipped=False)
            .values("item_id", "label_id").annotate(n=Count("pk")).order_by().values_list("item_id", "label_id", "n"))
    for item_id, label_id, n in rows:
        units[item_id][label_id] = n
    alpha, values = nominal_alpha(units.values())
    return {"alpha": alpha, "values": values, "items": len(units), "kind": "nominal"}


def _multi_label_alpha(project):
    answers = dict(_labeled_twice(project).values_list("pk", "label_count"))
    given = defaultdict(dict)  # class id -> {item id: answers giving it}
    rows = (AnnotationLabel.objects.filter(annotation__item_id__in=list(answers), annotation__undone=False)
            .values("annotation__item_id", "label_id").annotate(n=Count("pk")).order_by()
            .values_list("annotation__item_id", "label_id", "n"))
    for item_id, label_id, n in rows:
        given[label_id][item_id] = n
    per_class = {}
    for c in project.ordered_classes():
        units = ({1: given[c.pk].get(item_id, 0), 0: m - given[c.pk].get(item_id, 0)} for item_id, m in answers.items())
        per_class[c.name] = nominal_alpha(units)[0]
    defined = [a for a in per_class.values() if a is not None]
    return {"alpha": sum(defined) / len(defined) if defined else None, "values": sum(answers.values()),
            "items": len(answers), "kind": "per-class mean", "per_class": per_class}


def review_accuracy(project):
    """{annotator id: (graded answers, correct ones)} over the project's reviews."""
    graded = defaultdict(lambda: [0, 0])
    for judged, labels in Review.objects.filter(project=project).values_list("answers", "labels"):
        truth = sorted(labels)
        for answer in judged:
            if answer.get("labels") is None:
                continue
            tally = graded[answer["annotator"]]
            tally[0] += 1
            tally[1] += sorted(answer["labels"]) == truth
    return {annotator: tuple(tally) for annotator, tally in graded.items()}


def with_review_accuracy(project, rows):
    """The dashboard's annotator rows with `reviewed`, `review_correct` and `review_accuracy`
    (None before any of their answers was reviewed)."""
    accuracy = review_accuracy(project)
    ids = dict(get_user_model().objects.filter(username__in=[r["username"] for r in rows])
               .values_list("username", "pk")) if accuracy else {}
    for row in rows:
        reviewed, correct = accuracy.get(ids.get(row["username"]), (0, 0))
        row.update(reviewed=reviewed, review_correct=correct, review_accuracy=correct / reviewed if reviewed else None)
    return rows
