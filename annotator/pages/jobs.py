"""The background jobs of a project on its overview page (owners only): the list with each
job's progress (an htmx region that polls itself every 2 s while a job is queued or running),
starting an export file, and downloading it."""
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotator.access import OWNER_ROLES, OWNERS_ONLY, ServiceError, project_for
from annotator.exporting.registry import REGISTRY
from annotator.jobs.download import file_response
from annotator.jobs.exports import start_export
from annotator.jobs.service import job_of, jobs_of

SHOWN_JOBS = 10


def jobs_context(project, **extra):
    jobs = list(jobs_of(project).select_related("created_by")[:SHOWN_JOBS])
    return {"jobs": jobs, "jobs_active": any(job.is_active for job in jobs), "export_formats": REGISTRY.values(),
            **extra}


def render_jobs(request, project, status=200, **extra):
    context = {"project": project, **jobs_context(project, **extra)}
    return render(request, "annotator/_jobs.html", context, status=status)


@login_required
@require_GET
def project_jobs(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    return render_jobs(request, project)


@login_required
@require_POST
def export_job(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    try:
        start_export(project, user=request.user, fmt=request.POST.get("format", ""),
                     predictions=request.POST.get("predictions"), min_confidence=request.POST.get("min_confidence"))
    except ServiceError as exc:
        return render_jobs(request, project, status=200 if request.htmx else 400, jobs_error=exc.message)
    if not request.htmx:
        return redirect(project)
    return render_jobs(request, project)


@login_required
@require_GET
def job_download(request, pk, job_id):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    try:
        return file_response(request, job_of(project, job_id))
    except ServiceError as exc:
        return HttpResponse(exc.message, status=exc.status, content_type="text/plain; charset=utf-8")
