"""Import jobs: an upload of IMPORT_JOB_MIN_BYTES or more is saved to storage by the request,
then imported here by the worker (the same pipeline as a small upload, annotator.importing).
A retried attempt imports again: what the failed one stored is found as duplicates."""
from contextlib import ExitStack

from django.conf import settings

from annotator.importing.images import import_uploads
from annotator.jobs import files, service
from annotator.jobs.registry import JobKind, register

KIND = "import"
LISTED_REJECTIONS = 200  # rejected files named in the result; the counts cover all of them


def wants_job(uploads):
    """True when these uploads are large enough to be imported by a job."""
    return sum(getattr(upload, "size", 0) or 0 for upload in uploads) >= settings.IMPORT_JOB_MIN_BYTES


def start_import(project, uploads, *, user):
    """Saves the uploads to storage and queues their import; returns the job."""
    stored = files.save_uploads(uploads)
    try:
        return service.start(KIND, project=project, user=user, params={"uploads": stored})
    except BaseException:
        files.delete(stored)
        raise


def _run(job, progress):
    def report(done, total):
        progress(done / total if total else 0.0, f"{done} of {total} files")

    with ExitStack() as stack:
        uploads = files.open_uploads(job.params["uploads"], stack)
        report_ = import_uploads(job.project, uploads, user=job.created_by, progress=report)
    rejected = [outcome.as_dict() for outcome in report_.outcomes if outcome.status == "rejected"]
    return {
        "imported": report_.imported, "duplicates": report_.duplicates, "rejected": report_.rejected,
        "summary": report_.summary(), "rejected_files": rejected[:LISTED_REJECTIONS],
    }


def _finish(job):
    files.delete(job.params.get("uploads", {}))


register(JobKind(name=KIND, title="Import", run=_run, finish=_finish))
