"""What the model is doing, for pages, the API and the websocket: the trainer's phase and
progress, the newest version, and the accuracy of served guesses on audit items (Wilson
interval)."""
from django.db.models import Count, F
from django.utils import timezone

from annotator.modelloop.errors import one_line
from annotator.modelloop.set_measures import as_matrix, set_metrics
from annotator.models import Annotation, TrainerState


def wilson_interval(correct, n, z=1.96):
    """95% Wilson score interval of a proportion (good at small n and near 0 or 1)."""
    if n == 0:
        return None, None
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# The key only a guess imported from another tool has (labeling.leasing.imported_guess): such
# a guess shown on an audit item says nothing about the model.
IMPORTED_GUESS_KEY = "source"


def audit_answers(project):
    """(guess == answer, version id, labels the version had) for every live audit answer that
    had a model guess: audit items are drawn uniformly, so these are unbiased. In a
    multi-label project "==" is the exact-set match."""
    if project.multi_label:
        return [(set(guess) == set(answer), version, used) for guess, answer, version, used in set_audits(project)]
    rows = (
        Annotation.objects.filter(item__project=project, is_audit=True, undone=False, skipped=False)
        .exclude(suggestion__isnull=True)
        .exclude(suggestion__has_key=IMPORTED_GUESS_KEY)
        .values_list("suggestion", "label__name", "model_version_id", "model_version__labels_used")
    )
    return [
        (isinstance(s, dict) and s.get("label") == name, version, used)
        for s, name, version, used in rows
    ]


def set_audits(project):
    """(guessed set, answered set, version id, labels the version had) of a multi-label
    project's live audit answers that had a set guess."""
    rows = (
        Annotation.objects.filter(item__project=project, is_audit=True, undone=False, skipped=False)
        .exclude(suggestion__isnull=True).select_related("model_version").prefetch_related("labels")
    )
    return [
        (a.suggestion["labels"], [c.name for c in a.labels.all()], a.model_version_id,
         a.model_version.labels_used if a.model_version else None)
        for a in rows if isinstance(a.suggestion, dict) and isinstance(a.suggestion.get("labels"), list)
    ]


def set_audit_accuracy(project):
    """A multi-label project's audit accuracy: the exact-set match (the estimate, with its
    Wilson interval), and beside it the Hamming loss and per-class F1 of the same answers."""
    rows = set_audits(project)
    classes = project.class_names()
    scores = set_metrics(as_matrix([r[1] for r in rows], classes), as_matrix([r[0] for r in rows], classes))
    n, correct = len(rows), sum(1 for guess, answer, _v, _u in rows if set(guess) == set(answer))
    low, high = wilson_interval(correct, n)
    return {"n": n, "correct": correct, "estimate": correct / n if n else None, "low": low, "high": high,
            "measure": "exact set", "hamming_loss": scores["hamming_loss"], "macro_f1": scores["macro_f1"],
            "per_class_f1": dict(zip(classes, scores["per_class_f1"]))}


def audit_accuracy(project, answers=None):
    """Live accuracy estimate of the model's guesses on audit items, with its 95% interval.
    Counted in the database (the status is computed after every model version), or over
    `answers` from audit_answers. A multi-label project's is `set_audit_accuracy`."""
    if answers is None and project.multi_label:
        return set_audit_accuracy(project)
    if answers is None:
        from django.db.models import Q
        from django.db.models.fields.json import KeyTextTransform

        rows = (
            Annotation.objects.filter(item__project=project, is_audit=True, undone=False, skipped=False)
            .exclude(suggestion__has_key=IMPORTED_GUESS_KEY)
            .annotate(guess=KeyTextTransform("label", "suggestion"))
            .filter(guess__isnull=False)
        )
        counts = rows.aggregate(n=Count("id"), correct=Count("id", filter=Q(guess=F("label__name"))))
        n, correct = counts["n"], counts["correct"]
    else:
        n = len(answers)
        correct = sum(1 for ok, _v, _u in answers if ok)
    low, high = wilson_interval(correct, n)
    return {"n": n, "correct": correct, "estimate": correct / n if n else None, "low": low, "high": high}


def trainer_status(project):
    """What the live indicator shows: phase, progress, model version, device, accuracy."""
    state = TrainerState.objects.filter(project=project).select_related("current_version").first()
    now = timezone.now()
    version = state.current_version if state else None
    alive = bool(state and state.owner and state.lease_expires_at and state.lease_expires_at > now)
    phase = state.phase if state else TrainerState.Phase.WAITING
    detail = state.detail if state else ""
    if not alive and phase not in (TrainerState.Phase.FAILED, TrainerState.Phase.PAUSED):
        phase = TrainerState.Phase.WAITING
        detail = "No trainer is running: labeling goes on in the last queue's order."
    return {
        "phase": phase,
        "phase_label": TrainerState.Phase(phase).label,
        "progress": state.progress if state and alive else None,
        "detail": detail,
        "version": version.number if version else None,
        "version_kind": version.kind if version else None,
        "labels_used": version.labels_used if version else 0,
        "device": (state.device if state else "") or "",
        "encoder": (version.metrics or {}).get("encoder") if version else None,
        "served_by": (version.metrics or {}).get("served_by") if version else None,
        "error": one_line(state.last_error) if state and phase == TrainerState.Phase.FAILED else "",
        "accuracy": audit_accuracy(project),
        "updated_at": (state.updated_at if state else now).isoformat(),
    }


def version_accuracies(project):
    """{model version id: audit accuracy} of the guesses each version made on audit items."""
    by_version = {}
    for answer in audit_answers(project):
        by_version.setdefault(answer[1], []).append(answer)
    return {version: audit_accuracy(project, answers) for version, answers in by_version.items()}
