"""Bucket import jobs: registering a bucket prefix's images in place (annotator.importing.bucket)
outside the request, for prefixes too large to list and check while a browser waits. A retried
attempt lists the prefix again and skips the keys the failed one registered."""
from annotator.importing.bucket import import_bucket, report_dict, source_of
from annotator.jobs import service
from annotator.jobs.registry import JobKind, register

KIND = "bucket-import"
LISTED_OUTCOMES = 200  # rejected objects named in the result; the counts cover all of them


def start_bucket_import(project, url, *, user):
    """Checks the URL's form now (a clear 400 instead of a failed job), saves it as the
    project's bucket source, then queues the import."""
    bucket, prefix = source_of(url)
    if (project.source_bucket, project.source_prefix) != (bucket, prefix):
        project.source_bucket, project.source_prefix = bucket, prefix
        project.save(update_fields=["source_bucket", "source_prefix"])
    return service.start(KIND, project=project, user=user, params={"url": url})


def _run(job, progress):
    def report(done, total):
        progress(done / total if total else 0.0, f"{done} of {total} objects")

    url = job.params["url"]
    body = report_dict(url, import_bucket(job.project, url, user=job.created_by, progress=report))
    body["files"] = [f for f in body["files"] if f["status"] == "rejected"][:LISTED_OUTCOMES]
    body["summary"] = (f"{body['registered']} registered, {body['already_known']} already known, "
                       f"{body['rejected']} rejected from {url}")
    return body


register(JobKind(name=KIND, title="Bucket import", run=_run))
