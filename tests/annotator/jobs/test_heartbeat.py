"""The heartbeat thread keeps a running job's heartbeat fresh (committed rows: it writes from
its own thread and connection), and stops writing once the attempt is given up on."""
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from annotator.jobs.runner import Heartbeat
from annotator.models import Job


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_beats_while_running_and_is_fenced(settings, project):
    settings.JOB_HEARTBEAT_S = 0.05
    old = timezone.now() - timedelta(hours=1)
    job = Job.objects.create(project=project, kind="export", status="running", attempts=2, heartbeat_at=old)
    with Heartbeat(job.pk, 2):
        time.sleep(0.5)
    job.refresh_from_db()
    assert job.heartbeat_at > old + timedelta(minutes=59)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=old)
    with Heartbeat(job.pk, 1):  # an older attempt: its beats change nothing
        time.sleep(0.3)
    job.refresh_from_db()
    assert job.heartbeat_at == old
