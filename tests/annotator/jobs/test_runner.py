"""The job runner: attempts, retries (bounded), refusals, fencing, stale workers."""
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from annotator.access import Invalid
from annotator.jobs import registry, runner, service
from annotator.models import Job


@pytest.fixture
def flaky_kind():
    """A kind that fails its first `failures` runs, then reports progress and succeeds."""
    state = {"failures": 0, "runs": 0, "error": RuntimeError}

    def run(job, progress):
        state["runs"] += 1
        if state["runs"] <= state["failures"]:
            raise state["error"](f"run {state['runs']} broke")
        progress(0.5, "half")
        return {"runs": state["runs"]}

    registry.register(registry.JobKind(name="flaky", title="Flaky", run=run))
    yield state
    del registry.REGISTRY["flaky"]


def _tasks(job):
    return DBTaskResult.objects.filter(args_kwargs__args__0=job.pk).order_by("enqueued_at")


def test_start_queues_the_job_and_its_task_together(project, alice, flaky_kind):
    job = service.start("flaky", project=project, user=alice, params={"x": 1})
    assert (job.status, job.attempts, job.max_attempts) == ("queued", 0, 3)
    [task] = _tasks(job)
    assert task.task_path == "annotator.jobs.runner.run_job"
    assert task.args_kwargs == {"args": [job.pk, 1], "kwargs": {}}


def test_unknown_kind_is_refused(project, alice):
    with pytest.raises(registry.JobRefused, match="Unknown job kind 'nope'"):
        service.start("nope", project=project, user=alice, params={})
    assert not Job.objects.exists()


def test_a_job_runs_to_success(project, alice, flaky_kind, run_worker):
    job = service.start("flaky", project=project, user=alice, params={})
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.progress, job.result) == ("succeeded", 1, 1.0, {"runs": 1})
    assert job.started_at and job.finished_at and job.finished_at >= job.started_at


def test_a_failure_is_retried_then_succeeds(project, alice, flaky_kind, run_worker):
    flaky_kind["failures"] = 2
    job = service.start("flaky", project=project, user=alice, params={})
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts, flaky_kind["runs"]) == ("succeeded", 3, 3)
    assert _tasks(job).count() == 3


def test_retries_are_bounded(project, alice, flaky_kind, run_worker):
    flaky_kind["failures"] = 99
    job = service.start("flaky", project=project, user=alice, params={})
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts, flaky_kind["runs"]) == ("failed", 3, 3)
    assert job.message == "Failed after 3 attempts: RuntimeError: run 3 broke"


def test_a_retry_waits_its_delay(project, alice, flaky_kind, settings):
    settings.JOB_RETRY_DELAY_S = 30
    flaky_kind["failures"] = 1
    job = service.start("flaky", project=project, user=alice, params={})
    assert runner.run_job.call(job.pk, 1) == "failed"
    job.refresh_from_db()
    assert job.status == "queued"
    assert job.message == "Attempt 1 of 3 failed (RuntimeError: run 1 broke); retrying in 30 s."
    retry = _tasks(job).last()
    assert retry.args_kwargs["args"] == [job.pk, 2]
    assert timedelta(seconds=28) < retry.run_after - timezone.now() <= timedelta(seconds=30)
    assert [runner.retry_delay(n) for n in (1, 2, 3)] == [30, 60, 120]


def test_a_refusal_fails_at_once(project, alice, flaky_kind, run_worker):
    flaky_kind["failures"], flaky_kind["error"] = 1, Invalid
    job = service.start("flaky", project=project, user=alice, params={})
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.message) == ("failed", 1, "run 1 broke")


def test_an_attempt_runs_once(project, alice, flaky_kind):
    job = service.start("flaky", project=project, user=alice, params={})
    assert runner.run_job.call(job.pk, 1) == "succeeded"
    assert runner.run_job.call(job.pk, 1) == "skipped"  # a duplicate of the task row
    assert flaky_kind["runs"] == 1


def _running(job, *, attempt, beat_s_ago):
    Job.objects.filter(pk=job.pk).update(status="running", attempts=attempt,
                                         heartbeat_at=timezone.now() - timedelta(seconds=beat_s_ago))


def test_a_dead_workers_job_is_retried(project, alice, flaky_kind, settings, run_worker):
    settings.JOB_STALE_S = 120
    job = service.start("flaky", project=project, user=alice, params={})
    DBTaskResult.objects.update(status="RUNNING")  # claimed by a worker that then died
    _running(job, attempt=1, beat_s_ago=121)
    fresh = service.start("flaky", project=project, user=alice, params={})
    _running(fresh, attempt=1, beat_s_ago=5)  # alive: left alone
    assert runner.recover_stale() == [job.pk]
    job.refresh_from_db()
    assert job.status == "queued" and "the worker stopped during the attempt" in job.message
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 2)


def test_a_dead_workers_last_attempt_fails_the_job(project, alice, flaky_kind):
    job = service.start("flaky", project=project, user=alice, params={})
    _running(job, attempt=3, beat_s_ago=10_000)
    runner.recover_stale()
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.message == "Failed after 3 attempts: the worker stopped during the attempt"


def test_a_given_up_attempt_stops_at_its_next_write(project, alice):
    seen = {}

    def run(job, progress):
        Job.objects.filter(pk=job.pk).update(status="queued")  # as recover_stale does meanwhile
        try:
            progress(1.0, "late")
        except runner.Superseded:
            seen["stopped"] = True
            raise
        return {}

    registry.register(registry.JobKind(name="slow", title="Slow", run=run))
    try:
        job = service.start("slow", project=project, user=alice, params={})
        assert runner.run_job.call(job.pk, 1) == "superseded"
    finally:
        del registry.REGISTRY["slow"]
    job.refresh_from_db()
    assert seen == {"stopped": True} and job.status == "queued" and job.message != "late"


def test_a_kind_no_longer_registered_fails_plainly(project, alice):
    job = Job.objects.create(project=project, kind="gone", max_attempts=3)
    assert runner.run_job.call(job.pk, 1) == "refused"
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("failed", 1)
    assert job.message.startswith("Unknown job kind 'gone'")
