"""The bulk-labeling grid: the open images the model puts in one class (`?label=`), or the
images nearest to one image (`?similar_to=<item id>`, the labeling page's "Similar images"),
`?size=` of them. Every image starts selected; the labeler removes the ones that do not
belong and confirms, and static/js/bulk.js posts the selection to the API
(POST /api/projects/<pk>/annotations/bulk/, with the session) and offers the batch's undo."""
import uuid

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotator.access import LABELING_ROLES, ServiceError, project_for
from annotator.labeling import candidates
from annotator.pages.labeling import VIEWER_CANNOT_LABEL


@login_required
@require_GET
def bulk_grid(request, pk):
    project = project_for(request.user, pk, roles=LABELING_ROLES, refusal=VIEWER_CANNOT_LABEL)
    query = request.GET
    classes = project.ordered_classes()
    found, error = None, ""
    if query.get("label") or query.get("similar_to"):
        try:
            found = candidates.for_query(project, request.user, label=query.get("label"),
                                         similar_to=query.get("similar_to"), size=query.get("size"))
        except ServiceError as exc:
            error = exc.message
    answer = _default_answer(found)
    context = {
        "project": project,
        "classes": classes,
        "found": found,
        "error": error,
        "answer": answer,
        "size": query.get("size") or "",
        "key": uuid.uuid4().hex,  # the first confirm's idempotency key; the script makes the next ones
    }
    return render(request, "annotator/bulk.html", context, status=400 if error else 200)


def _default_answer(found):
    """The class the confirm button starts with: the one asked for, or the model's guess for
    the chosen image."""
    if found is None:
        return None
    if found.label:
        return found.label
    for candidate in found.candidates:
        if candidate.item.pk == found.anchor.pk and candidate.suggestion:
            return candidate.suggestion["label"]
    return None
