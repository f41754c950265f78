"""The model's side of the dashboard: learning curves (audit accuracy, cross-validated accuracy,
fine-tuning runs), pool uncertainty, class balance, confused classes and suspect labels.

Aggregates only: the audit answers are grouped by the number of labels their model had (one
row per distinct count), versions come back as a few columns (one JSON key, not the whole
metrics), the pool's histogram and guessed class counts were summarised by the trainer into
the current version's metrics, and confusions and suspects come from the current version's
held-out array of the labeled items (NumPy, no rows)."""
import numpy as np
from django.db.models import Count, F, Q

from annotator.dashboard.progress import live_answers, per_class
from annotator.modelloop import predictions
from annotator.modelloop.status import set_audit_accuracy
from annotator.models import Annotation, Item

CURVE_MAX_BINS = 12


CURVE_MIN_PER_BIN = 5


CURVE_MAX_CV_POINTS = 200


SUSPECTS_SHOWN = 25


SUSPECT_CANDIDATES = 200


CONFUSED_PAIRS_SHOWN = 5


def current_version(project):
    from annotator.models import TrainerState

    state = TrainerState.objects.filter(project=project).select_related("current_version").first()
    return state.current_version if state else None


def _audit_bins(rows):
    """Merge (labels, n, correct) rows, sorted by labels, into at most CURVE_MAX_BINS bins of
    at least CURVE_MIN_PER_BIN answers (the last bin takes the remainder), each with its
    Wilson 95% interval; x is the bin's answer-weighted mean number of labels."""
    from annotator.modelloop.status import wilson_interval

    total = sum(n for _l, n, _c in rows)
    if not total:
        return []
    bins = min(CURVE_MAX_BINS, max(1, total // CURVE_MIN_PER_BIN))
    target = total / bins
    out, acc = [], [0, 0, 0]  # label-weighted sum, n, correct
    for labels, n, correct in rows:
        acc[0] += labels * n
        acc[1] += n
        acc[2] += correct
        if acc[1] >= target and len(out) < bins - 1:
            out.append(acc)
            acc = [0, 0, 0]
    if acc[1]:
        out.append(acc)
    points = []
    for weighted, n, correct in out:
        low, high = wilson_interval(correct, n)
        points.append({"labels": round(weighted / n, 1), "n": n, "correct": correct,
                       "accuracy": correct / n, "low": low, "high": high})
    return points


def audit_curve(project):
    """Accuracy of the guesses on audit items (drawn uniformly, so unbiased) against the
    number of labels the guessing model had, binned, with 95% intervals; current model
    generation only (a reset starts a new curve). One GROUP BY query. A multi-label project's
    accuracy is the exact-set match (`set_audit_curve`)."""
    from django.db.models.fields.json import KeyTextTransform

    if project.multi_label:
        return set_audit_curve(project)
    rows = (
        live_answers(project)
        .filter(is_audit=True, skipped=False, model_version__generation=project.model_generation)
        .annotate(guess=KeyTextTransform("label", "suggestion"))
        .filter(guess__isnull=False)
        .values("model_version__labels_used")
        .annotate(n=Count("pk"), correct=Count("pk", filter=Q(guess=F("label__name"))))
        .order_by("model_version__labels_used")
        .values_list("model_version__labels_used", "n", "correct")
    )
    return _audit_bins(list(rows))


def set_audit_curve(project):
    """`audit_curve` of a multi-label project: a guess is right when its whole set is the
    answer's. The sets are compared in Python (audit answers are a small share of all)."""
    from annotator.modelloop.status import set_audits

    by_labels = {}
    generation = dict(_versions(project).values_list("pk", "generation"))
    for guess, answer, version, used in set_audits(project):
        if version in generation and used is not None:
            n, correct = by_labels.get(used, (0, 0))
            by_labels[used] = (n + 1, correct + (set(guess) == set(answer)))
    return _audit_bins([(used, n, correct) for used, (n, correct) in sorted(by_labels.items())])


def _versions(project):
    from annotator.models import ModelVersion

    return ModelVersion.objects.filter(project=project, status=ModelVersion.Status.OK,
                                       generation=project.model_generation)


def cv_curve(project):
    """Cross-validated accuracy on the human labels, per number of labels (the newest fast
    version for each count), at most CURVE_MAX_CV_POINTS points evenly thinned. Biased
    towards the items the strategy chose, so drawn beside the audit curve, not instead."""
    from django.db.models import Max
    from django.db.models.fields.json import KeyTextTransform

    from annotator.models import ModelVersion

    fast = _versions(project).filter(kind=ModelVersion.Kind.FAST)
    newest = fast.values("labels_used").annotate(last=Max("number")).order_by().values("last")
    rows = list(
        fast.filter(number__in=newest)
        .annotate(cv=KeyTextTransform("cv_accuracy", "metrics"))
        .filter(cv__isnull=False)
        .order_by("labels_used")
        .values_list("labels_used", "number", "cv")
    )
    if len(rows) > CURVE_MAX_CV_POINTS:
        step = len(rows) / CURVE_MAX_CV_POINTS
        rows = [rows[int(i * step)] for i in range(CURVE_MAX_CV_POINTS - 1)] + [rows[-1]]
    return [{"labels": labels, "version": number, "accuracy": float(cv)} for labels, number, cv in rows]


def slow_runs(project):
    """Fine-tunings of this generation: where they happened on the label axis, adopted or not."""
    from django.db.models.fields.json import KeyTextTransform

    from annotator.models import ModelVersion

    rows = (
        _versions(project).filter(kind=ModelVersion.Kind.SLOW)
        .annotate(adopted=KeyTextTransform("adopted", "metrics"))
        .order_by("number").values_list("labels_used", "number", "adopted")
    )
    return [{"labels": labels, "version": number, "adopted": adopted in (True, "true", "True", 1, "1")}
            for labels, number, adopted in rows]


def recent_versions(project, limit=8):
    """The newest versions of this generation for the table beside the curve."""
    from django.db.models.fields.json import KeyTextTransform

    rows = (
        _versions(project)
        .annotate(cv=KeyTextTransform("cv_accuracy", "metrics"), adopted=KeyTextTransform("adopted", "metrics"))
        .order_by("-number")
        .values("pk", "number", "kind", "labels_used", "created_at", "cv", "adopted", "strategy")[:limit]
    )
    return [{**row, "cv": float(row["cv"]) if row["cv"] is not None else None} for row in rows]


def uncertainty(version):
    """The version's histogram of the unlabeled pool's uncertainty (entropy / log C), or
    None when it has none (no labels yet, or a version older than this summary)."""
    metrics = version.metrics if version is not None else {}
    counts = metrics.get("uncertainty_hist")
    if not isinstance(counts, list) or not counts:
        return None
    bins = len(counts)
    return {"edges": [round(i / bins, 4) for i in range(bins + 1)], "counts": counts,
            "unlabeled": metrics.get("unlabeled"), "mean": metrics.get("uncertainty_mean"),
            "version": version.number}


def class_balance(project, version, per_class_rows):
    """Human labels per class against the current model's guesses for the unlabeled pool,
    in the project's class order (guesses matched by class name: the version's columns may
    predate a reorder)."""
    names = [name for name, _n in per_class_rows]
    predicted = None
    counts = (version.metrics or {}).get("predicted_unlabeled") if version is not None else None
    if isinstance(counts, list) and len(counts) == len(version.classes):
        by_name = dict(zip(version.classes, counts))
        predicted = [int(by_name.get(name, 0)) for name in names]
    return {"names": names, "labeled": [n for _name, n in per_class_rows], "predicted": predicted}


def _review_rows(heldout, min_confidence):
    """Indices of held-out rows the model confidently disagrees with, most confident first."""
    probs = np.asarray(heldout.probs, dtype=np.float32)
    guess = probs.argmax(1)
    confidence = probs[np.arange(len(probs)), guess]
    flagged = np.where((guess != heldout.labels) & (confidence >= min_confidence))[0]
    return flagged[np.argsort(-confidence[flagged], kind="stable")], guess, confidence


def confused_pairs(heldout, limit=CONFUSED_PAIRS_SHOWN):
    """The class pairs most often mixed up: the held-out guess is one and the human label the
    other (both directions summed), with the share of those two classes' labels involved."""
    if heldout is None or not len(heldout.labels):
        return []
    c = len(heldout.classes)
    guess = np.asarray(heldout.probs).argmax(1)
    matrix = np.zeros((c, c), np.int64)
    np.add.at(matrix, (heldout.labels, guess), 1)
    support = matrix.sum(1)
    mixed = matrix + matrix.T
    pairs = []
    for a in range(c):
        for b in range(a + 1, c):
            if mixed[a, b]:
                pairs.append((int(mixed[a, b]), a, b))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    out = []
    for count, a, b in pairs[:limit]:
        both = int(support[a] + support[b])
        out.append({"a": heldout.classes[a], "b": heldout.classes[b], "count": count,
                    "a_as_b": int(matrix[a, b]), "b_as_a": int(matrix[b, a]),
                    "share": count / both if both else None})
    return out


def suspects(project, heldout, min_confidence, limit=SUSPECTS_SHOWN):
    """(rows, flagged): labeled items whose held-out guess confidently disagrees with the
    human label, not yet reviewed by an owner, with their current live labels (a label
    corrected since the model looked is shown as it is now, and dropped when it now agrees).
    Reads at most SUSPECT_CANDIDATES items from the database."""
    if heldout is None or not len(heldout.labels):
        return [], 0
    order, guess, confidence = _review_rows(heldout, min_confidence)
    flagged = len(order)
    candidates = [int(heldout.items[i]) for i in order[:SUSPECT_CANDIDATES]]
    items = {
        item.pk: item for item in Item.objects.filter(project=project, pk__in=candidates, reviewed_at__isnull=True)
    }
    labels = {}
    for item_id, annotation_id, name, username in (
        Annotation.objects.filter(item_id__in=list(items), undone=False, skipped=False)
        .order_by("created_at", "pk").values_list("item_id", "pk", "label__name", "annotator__username")
    ):
        labels.setdefault(item_id, []).append({"annotation": annotation_id, "label": name, "annotator": username})
    rows = []
    for i in order[:SUSPECT_CANDIDATES]:
        item = items.get(int(heldout.items[i]))
        live = labels.get(int(heldout.items[i]))
        if item is None or not live:
            continue
        guessed = heldout.classes[int(guess[i])]
        if all(entry["label"] == guessed for entry in live):
            continue  # corrected since: it agrees now
        human = heldout.classes[int(heldout.labels[i])]
        rows.append({
            "item": item.pk, "name": item.original_name or f"item {item.pk}", "image_url": item.image_url(),
            "labels": live, "human": human, "guess": guessed, "confidence": round(float(confidence[i]), 4),
            "human_probability": round(float(heldout.probs[i][int(heldout.labels[i])]), 4),
        })
        if len(rows) >= limit:
            break
    return rows, flagged


def suspect_guesses(project, *, limit=1000):
    """{item id: the guessed class name} for the labels the current model, with them held out,
    confidently disagrees with (SUSPECT_MIN_CONFIDENCE), most confident first, at most
    `limit`: the review queue's "suspect" source. Reviewed or since-corrected items are the
    caller's to drop. Empty without a held-out array of this generation."""
    from django.conf import settings

    version = current_version(project)
    if version is None or version.generation != project.model_generation:
        return {}
    heldout = predictions.heldout(version)
    if heldout is None or not len(heldout.labels):
        return {}
    order, guess, _confidence = _review_rows(heldout, settings.SUSPECT_MIN_CONFIDENCE)
    return {int(heldout.items[i]): heldout.classes[int(guess[i])] for i in order[:limit]}
def set_suspects(project, heldout, min_confidence, limit=SUSPECTS_SHOWN):
    """`suspects` of a multi-label project: answered items where the held-out probability of
    some class contradicts the answer by at least `min_confidence` (a class left out that the
    model gives >= min_confidence, or one chosen that it gives <= 1 - min_confidence); the
    confidence shown is the largest such contradiction. Labels are shown as sets."""
    from annotator.labeling.corrections import set_text

    if heldout is None or not len(heldout.labels):
        return [], 0
    probs = np.asarray(heldout.probs, dtype=np.float32)
    truth = np.asarray(heldout.labels) > 0
    contradiction = np.where(truth, 1.0 - probs, probs).max(1)
    flagged_rows = np.where(contradiction >= min_confidence)[0]
    order = flagged_rows[np.argsort(-contradiction[flagged_rows], kind="stable")][:SUSPECT_CANDIDATES]
    wanted = [int(heldout.items[i]) for i in order]
    items = {item.pk: item for item in Item.objects.filter(project=project, pk__in=wanted, reviewed_at__isnull=True)}
    live = {}
    for answer in (Annotation.objects.filter(item_id__in=list(items), undone=False, skipped=False)
                   .select_related("annotator").prefetch_related("labels").order_by("created_at", "pk")):
        chosen = [c.name for c in sorted(answer.labels.all(), key=lambda c: (c.order, c.pk))]
        live.setdefault(answer.item_id, []).append(
            {"annotation": answer.pk, "label": set_text(chosen), "annotator": answer.annotator.username})
    rows = []
    for i in order:
        item, answers = items.get(int(heldout.items[i])), live.get(int(heldout.items[i]))
        if item is None or not answers:
            continue
        guess = set_text(name for name, p in zip(heldout.classes, probs[i]) if p >= 0.5)
        if all(entry["label"] == guess for entry in answers):
            continue  # corrected since: it agrees now
        rows.append({
            "item": item.pk, "name": item.original_name or f"item {item.pk}", "image_url": item.image_url(),
            "labels": answers, "human": set_text(n for n, t in zip(heldout.classes, truth[i]) if t), "guess": guess,
            "confidence": round(float(contradiction[i]), 4),
            "human_probability": round(float(np.where(truth[i], probs[i], 1.0 - probs[i]).prod()), 4),
        })
        if len(rows) >= limit:
            break
    return rows, len(flagged_rows)


def model_summary(project, per_class_rows=None, *, min_confidence=None):
    """Everything the dashboard shows about the model; cheap enough for every page view
    (a handful of aggregate queries, one small JSON read, one held-out array)."""
    from django.conf import settings

    if min_confidence is None:
        min_confidence = settings.SUSPECT_MIN_CONFIDENCE
    version = current_version(project)
    if version is not None and version.generation != project.model_generation:
        version = None
    heldout = predictions.heldout(version)
    if heldout is not None and heldout.labels.ndim == 2:  # a multi-label version's sets
        suspect_rows, flagged = set_suspects(project, heldout, min_confidence)
    else:
        suspect_rows, flagged = suspects(project, heldout, min_confidence)
    return {
        "version": version.number if version else None,
        "curve": {"audit": audit_curve(project), "cv": cv_curve(project), "slow": slow_runs(project)},
        "uncertainty": uncertainty(version),
        "classes": class_balance(project, version, per_class_rows if per_class_rows is not None else per_class(project)),
        "confused": [] if project.multi_label else confused_pairs(heldout),  # classes of a set co-occur
        "suspects": suspect_rows,
        "suspects_flagged": flagged,
        "suspect_min_confidence": min_confidence,
        "heldout_labels": int(len(heldout.labels)) if heldout is not None else 0,
        "versions": recent_versions(project),
        # multi-label: the exact-set audit accuracy with its Hamming loss and per-class F1
        "set_audit": set_audit_accuracy(project) if project.multi_label else None,
    }


def fields(model):
    """Short texts beside the charts that static/js/dashboard.js replaces on a refresh."""
    hist = model["uncertainty"]
    text = ""
    if hist:
        text = f"{hist['unlabeled'] or 0:,} unlabeled images"
        if hist.get("mean") is not None:
            text += f", mean {hist['mean']:.2f}"
        text += f" (model v{hist['version']})."
    return {"uncertainty_text": text}
