"""The dashboard page (owners, reviewers and viewers): progress, annotators, the model's curves and
tables, and settling suspect labels."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotator.access import DASHBOARD_ROLES, OWNER_ROLES, OWNERS_ONLY, NotFound, ServiceError, project_for
from annotator.dashboard import model_side
from annotator.dashboard.summary import dashboard_summary
from annotator.exporting.registry import LABELS, REGISTRY
from annotator.labeling.corrections import review_item
from annotator.modelloop.status import trainer_status
from annotator.models import Role


@login_required
@require_POST
def item_review(request, pk, item_pk):
    """Keep or relabel a suspect label from the dashboard (owners)."""
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    # A button sends `label` (empty: keep); the drop-down of the other classes sends `other`.
    label = (request.POST.get("other") or request.POST.get("label") or "").strip() or None
    try:
        result = review_item(project, item_pk, by=request.user, label=label)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except ServiceError as exc:
        if request.htmx:
            return render(request, "annotator/project_dashboard.html#suspect-done",
                          {"error": exc.message, "item_pk": item_pk}, status=200)
        messages.error(request, exc.message)
        return redirect(reverse("project-dashboard", args=[project.pk]) + "#dash-suspects")
    done = (f"Relabeled as {result['label']} ({result['changed']} label{'s' if result['changed'] != 1 else ''} "
            "changed)." if result["label"] else "Kept as labeled.")
    if request.htmx:
        return render(request, "annotator/project_dashboard.html#suspect-done", {"notice": done, "item_pk": item_pk})
    messages.success(request, done)
    return redirect(reverse("project-dashboard", args=[project.pk]) + "#dash-suspects")


DASHBOARD_REFUSAL = (
    "The dashboard is for this project's owners, reviewers and viewers. Your own progress is on the "
    "project page; ask an owner of this project if you need the dashboard."
)


def export_links(project):
    """(format, link text, note beside it, why it is refused for this project or "") for
    every export format; the label formats the project can take again as (format, name) for
    the form that adds the model's guesses."""
    links = [(f.name, f.title, f.note, f.refusal(project) or "") for f in REGISTRY.values()]
    guesses = [(f.name, f.choice or f.note) for f in REGISTRY.values() if f.kind == LABELS and not f.refusal(project)]
    splits = [(f.name, f.choice or f.note) for f in REGISTRY.values() if f.splits and not f.refusal(project)]
    return links, guesses, splits


@login_required
def project_dashboard(request, pk):
    """Progress, classes, annotators and exports; read-only, so viewers see all of it."""
    project = project_for(request.user, pk, roles=DASHBOARD_ROLES, refusal=DASHBOARD_REFUSAL)
    summary = dashboard_summary(project)
    model = summary["model"]
    links, guess_formats, split_formats = export_links(project)
    context = {
        "project": project,
        "model": model,
        "chart_data": {"model": _chart_payload(model)},
        "dash_fields": model_side.fields(model),
        "is_owner": project.current_role == Role.OWNER,
        "classes": project.ordered_classes(),
        "progress": summary["progress"],
        "progress_segments": _progress_segments(summary["progress"]),
        "class_rows": _class_rows(summary["per_class"]),
        "annotator_rows": [{**row, "median_s": _seconds(row["median_ms"])} for row in summary["annotators"]],
        "agreement": summary["agreement"],
        "percent_done": _percent_done(summary["progress"]),
        "export_links": links,
        "guess_formats": guess_formats,
        "split_formats": split_formats,
        "trainer_status": trainer_status(project),
    }
    return render(request, "annotator/project_dashboard.html", context)


def _chart_payload(model):
    """The part of the model summary static/js/dashboard.js draws (the API sends the same)."""
    return {key: model[key] for key in ("version", "curve", "uncertainty", "classes")}


def _percent(part, whole):
    return round(100 * part / whole) if whole else 0


def _percent_done(progress):
    """Rounded, but never 100% while an image still needs a label."""
    percent = _percent(progress["done"], progress["items"])
    return min(percent, 99) if progress["remaining"] else percent


def _width(part, whole):
    """A CSS width in percent with a dot decimal, whatever the locale."""
    return f"{100 * part / whole:.2f}" if whole else "0"


def _progress_segments(progress):
    """The stacked bar: done, labeled but needing more labels, skipped only, untouched."""
    parts = [
        ("done", "Done", progress["done"]),
        ("in-progress", "Needs more labels", progress["in_progress"]),
        ("skipped", "Skipped only", progress["skipped"]),
        ("untouched", "Not answered yet", progress["untouched"]),
    ]
    return [
        {"key": key, "name": name, "count": n, "width": _width(n, progress["items"])}
        for key, name, n in parts
        if n or key in ("done", "untouched")
    ]


def _class_rows(per_class):
    total = sum(n for _name, n in per_class)
    top = max((n for _name, n in per_class), default=0)
    return [
        {"name": name, "count": n, "width": _width(n, top), "share": _percent(n, total)}
        for name, n in per_class
    ]


def _seconds(ms):
    if ms is None:
        return None
    return f"{ms / 1000:.1f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"
