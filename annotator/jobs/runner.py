"""Running a job: the one django-tasks task (`run_job`), attempts, heartbeat, retries.

Each attempt is one django-tasks task row, `run_job(job_id, attempt)`, run by the worker
(`manage.py jobs_worker`, or the child `serve` starts). The Job row is the truth people see:
1. the attempt claims the job with one conditional UPDATE (queued, and `attempts` one less
   than its number), so two workers never run the same attempt, and a stale task row does
   nothing;
2. while the kind runs, a thread beats `heartbeat_at` every JOB_HEARTBEAT_S, and progress is
   written at most twice a second; every write is fenced on the attempt number, so an attempt
   that was given up on (its worker looked dead) stops at its next write instead of racing
   the retry;
3. the outcome: succeeded with the kind's result; a ServiceError (a refusal that no retry
   can change: bad input, no model, a full disk) fails it at once with its sentence; any other
   exception is retried after JOB_RETRY_DELAY_S (doubled each time) until JOB_MAX_ATTEMPTS
   runs have failed.

django-tasks' database worker has no retries and leaves a killed worker's task "running"
for ever, so `recover_stale` (run by jobs_worker at start and then every JOB_STALE_S / 2)
requeues a running job whose heartbeat is older than JOB_STALE_S, as a failed attempt.
"""
import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tasks import task

from annotator.access import ServiceError
from annotator.job_models import Job
from annotator.jobs.registry import REGISTRY, lookup

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.5


class Superseded(Exception):
    """This attempt no longer owns the job (requeued as stale, or the job was deleted)."""


def _fenced(job_id, attempt):
    return Job.objects.filter(pk=job_id, attempts=attempt, status=Job.Status.RUNNING)


class Progress:
    """The `progress(fraction, message)` a kind calls: throttled, fenced writes."""

    def __init__(self, job_id, attempt):
        self.job_id, self.attempt = job_id, attempt
        self.last = 0.0

    def __call__(self, fraction, message=""):
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S and fraction < 1:
            return
        self.last = now
        fraction = min(max(float(fraction), 0.0), 1.0)
        if not _fenced(self.job_id, self.attempt).update(progress=fraction, message=str(message)[:300],
                                                         heartbeat_at=timezone.now()):
            raise Superseded


class Heartbeat:
    """A thread that keeps `heartbeat_at` fresh while a kind works without reporting (a
    database dump, one huge file)."""

    def __init__(self, job_id, attempt):
        self.job_id, self.attempt = job_id, attempt
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"job-{job_id}-heartbeat", daemon=True)

    def _beat(self):
        try:
            while not self.stop.wait(settings.JOB_HEARTBEAT_S):
                try:
                    _fenced(self.job_id, self.attempt).update(heartbeat_at=timezone.now())
                except Exception:  # noqa: BLE001 - a missed beat is retried; a dead database shows elsewhere
                    log.warning("Job %s: heartbeat failed", self.job_id, exc_info=True)
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def retry_delay(attempt):
    """Seconds before the attempt after `attempt` (1-based): JOB_RETRY_DELAY_S, doubled each time."""
    return settings.JOB_RETRY_DELAY_S * 2 ** (attempt - 1)


def _claim(job_id, attempt):
    now = timezone.now()
    return Job.objects.filter(pk=job_id, status=Job.Status.QUEUED, attempts=attempt - 1).update(
        status=Job.Status.RUNNING, attempts=attempt, started_at=now, heartbeat_at=now, progress=0.0,
        message="Started.")


def _finish(job, attempt, status, message, result=None):
    """The job's final state; then the kind removes what it no longer needs."""
    done = _fenced(job.pk, attempt).update(status=status, message=message[:300], result=result,
                                           progress=1.0 if status == Job.Status.SUCCEEDED else job.progress,
                                           finished_at=timezone.now())
    if done:
        _cleanup(job)


def _cleanup(job):
    kind = REGISTRY.get(job.kind)
    if kind is not None and kind.finish is not None:
        try:
            kind.finish(job)
        except Exception:  # noqa: BLE001 - leftovers are for `cleanup`, the outcome stands
            log.exception("Job %s: removing its inputs failed", job.pk)


def give_up_or_retry(job, attempt, reason, *, delay):
    """Attempt `attempt` failed for `reason` (a sentence): queue the next one in `delay`
    seconds, or fail the job when it was the last. Fenced on the attempt."""
    with transaction.atomic():
        if attempt < job.max_attempts:
            message = f"Attempt {attempt} of {job.max_attempts} failed ({reason}); retrying in {delay} s."
            if _fenced(job.pk, attempt).update(status=Job.Status.QUEUED, message=message[:300]):
                run_job.using(run_after=timezone.now() + timedelta(seconds=delay)).enqueue(job.pk, attempt + 1)
            return
    _finish(job, attempt, Job.Status.FAILED, f"Failed after {attempt} attempt{'s' if attempt > 1 else ''}: {reason}")


@task()
def run_job(job_id, attempt):
    """One attempt of a job (django-tasks task; the worker calls it)."""
    if not _claim(job_id, attempt):
        log.info("Job %s attempt %s: nothing to do (finished, deleted or run by another attempt)", job_id, attempt)
        return "skipped"
    job = Job.objects.select_related("project", "created_by").get(pk=job_id)
    log.info("Job %s (%s) attempt %s of %s started", job.pk, job.kind, attempt, job.max_attempts)
    try:
        kind = lookup(job.kind)  # a kind no longer registered is a refusal
        with Heartbeat(job.pk, attempt):
            result = kind.run(job, Progress(job.pk, attempt))
    except Superseded:
        log.warning("Job %s attempt %s was superseded; stopped", job_id, attempt)
        return "superseded"
    except ServiceError as exc:
        log.info("Job %s refused: %s", job.pk, exc.message)
        _finish(job, attempt, Job.Status.FAILED, exc.message)
        return "refused"
    except (KeyboardInterrupt, SystemExit):
        # the worker was told to stop at once (a second Ctrl+C or SIGTERM): requeue now rather
        # than wait for JOB_STALE_S to pass
        give_up_or_retry(job, attempt, "the worker was stopped during the attempt", delay=0)
        raise
    except Exception as exc:
        log.exception("Job %s (%s) attempt %s failed", job.pk, job.kind, attempt)
        give_up_or_retry(job, attempt, f"{type(exc).__name__}: {exc}", delay=retry_delay(attempt))
        return "failed"
    _finish(job, attempt, Job.Status.SUCCEEDED, "Done.", result)
    log.info("Job %s (%s) succeeded", job.pk, job.kind)
    return "succeeded"


def recover_stale(now=None):
    """Running jobs whose heartbeat is older than JOB_STALE_S: their worker died (killed,
    out of memory, the machine restarted). Each counts as a failed attempt. Returns their ids."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.JOB_STALE_S)
    stale = list(Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=cutoff))
    for job in stale:
        log.warning("Job %s (%s): no heartbeat since %s; its worker stopped", job.pk, job.kind, job.heartbeat_at)
        give_up_or_retry(job, job.attempts, "the worker stopped during the attempt", delay=0)
    return [job.pk for job in stale]
