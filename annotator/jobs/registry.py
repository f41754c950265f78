"""The job kinds by name (REGISTRY). A kind is a plain function that does the work and reports
progress; the runner (annotator.jobs.runner) gives it the job row and a `progress(fraction,
message)` callable, and keeps the attempts, the heartbeat, retries and the outcome.

A new kind (a bucket import, say): a module in this package that calls `register(JobKind(...))`,
listed in KINDS in annotator/jobs/__init__.py, and a start function that calls
`annotator.jobs.service.start(...)`. Nothing else branches on the kind."""
from collections.abc import Callable
from dataclasses import dataclass

from annotator.access import ServiceError


class JobRefused(ServiceError):
    """A job that cannot succeed however often it is tried (bad input, no model, a full
    disk): it fails at once with this sentence, without a retry."""

    status = 400


@dataclass(frozen=True)
class JobKind:
    name: str  # Job.kind
    title: str  # what people see: "Import", "Export"
    # (job, progress) -> a JSON-able result for Job.result; `progress(fraction, message)`
    # with fraction in [0, 1]. Raises JobRefused (or any ServiceError) for a final refusal;
    # any other exception is retried (JOB_MAX_ATTEMPTS). It must be safe to run again after a
    # failed or interrupted attempt.
    run: Callable[..., dict]
    # (job) -> None: called once the job is finished for good (succeeded or failed), to
    # remove inputs that are no longer needed (uploaded files). Optional.
    finish: Callable[..., None] | None = None


REGISTRY: dict[str, JobKind] = {}


def register(kind):
    if kind.name in REGISTRY:
        raise ValueError(f"Job kind {kind.name!r} is registered twice.")
    REGISTRY[kind.name] = kind
    return kind


def lookup(name):
    try:
        return REGISTRY[name]
    except KeyError:
        raise JobRefused(f"Unknown job kind {name!r}; known kinds: {', '.join(REGISTRY)}.") from None
