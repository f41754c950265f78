"""Starting and reading jobs: the page, the API and the commands call these."""
from django.conf import settings
from django.db import transaction

from annotator.access import NotFound
from annotator.job_models import Job
from annotator.jobs.registry import lookup
from annotator.jobs.runner import run_job


def start(kind_name, *, project, user, params):
    """A queued job of kind `kind_name`, its first attempt enqueued in the same transaction
    (the queue is a table of the same database), so there is never a job without its task."""
    kind = lookup(kind_name)
    with transaction.atomic():
        job = Job.objects.create(project=project, kind=kind.name, created_by=user, params=params,
                                 max_attempts=settings.JOB_MAX_ATTEMPTS, message="Waiting for a worker.")
        run_job.enqueue(job.pk, 1)
    return job


def jobs_of(project):
    return Job.objects.filter(project=project)


def job_of(project, pk):
    """The project's job `pk`, or NotFound (another project's job is not found either)."""
    job = Job.objects.filter(project=project, pk=pk).first()
    if job is None:
        raise NotFound("No such job in this project.")
    return job
