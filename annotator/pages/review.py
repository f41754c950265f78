"""The review page (owners and reviewers): the next item of the review queue with its
answers, the model's guess and why it is there; accept the answers or fix the labels. Plain
forms (no script needed): a verdict redirects back to the page, which leases the next item."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotator.access import REVIEW_ROLES, ServiceError, is_row_id, project_for
from annotator.modelloop import predictions
from annotator.review.queue import REASONS, next_for_review, queue_counts
from annotator.review.serializers import REASON_TEXT
from annotator.review.verdicts import submit_review

REVIEW_REFUSAL = "Reviewing is for this project's owners and reviewers. Ask an owner to make you a reviewer."


@login_required
def review(request, pk):
    project = project_for(request.user, pk, roles=REVIEW_ROLES, refusal=REVIEW_REFUSAL)
    candidate = next_for_review(project, request.user)
    current = predictions.current(project) if candidate else None
    counts = queue_counts(project)
    context = {
        "project": project,
        "candidate": candidate,
        "reasons": [(r, REASON_TEXT[r]) for r in candidate.reasons] if candidate else [],
        "answers": [_answer_row(a) for a in candidate.answers] if candidate else [],
        "guess": current.suggestion(candidate.item) if current else None,
        "classes": project.ordered_classes(),
        "queue": [(r, counts[r]) for r in REASONS],
        "queue_total": counts["total"],
    }
    return render(request, "annotator/review.html", context)


@login_required
@require_POST
def review_verdict(request, pk):
    project = project_for(request.user, pk, roles=REVIEW_ROLES, refusal=REVIEW_REFUSAL)
    item = request.POST.get("item", "")
    verdict = request.POST.get("verdict", "")
    label = (request.POST.get("label") or "").strip() or None
    labels = request.POST.getlist("labels") if project.multi_label and verdict == "fix" else None
    try:
        if not is_row_id(item):
            raise ServiceError("The form lost its image. Reload the page and try again.")
        result = submit_review(project, request.user, item_id=int(item), verdict=verdict, label=label, labels=labels)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        done = "Accepted." if result.verdict == "accept" else f"Fixed: {', '.join(result.labels) or 'none'}."
        messages.success(request, done)
    return redirect("review", pk=project.pk)


def _answer_row(annotation):
    if annotation.unsure:
        given = "unsure"
    elif annotation.skipped:
        given = "skip"
    elif annotation.label_id:
        given = annotation.label.name
    else:
        given = ", ".join(sorted(c.name for c in annotation.labels.all())) or "none"
    return {"annotator": annotation.annotator.username, "given": given, "source": annotation.get_source_display(),
            "unsure": annotation.unsure, "skipped": annotation.skipped, "at": annotation.created_at}
