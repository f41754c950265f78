"""`manage.py jobs_worker`: the task worker for background jobs (annotator/jobs/).

django-tasks' database worker (`db_worker`) runs the tasks; around it this command recovers
the jobs of a worker that died (annotator.jobs.runner.recover_stale: at start, then every
JOB_STALE_S / 2 in a thread), which django-tasks does not do. Run one or more anywhere that
reaches the database and the storage (several take turns: a task row is claimed once).
SIGTERM or Ctrl+C: finish the current job, then exit (a second one stops at once; the job is
then retried after JOB_STALE_S)."""
import logging
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection

from annotator.jobs.runner import recover_stale

log = logging.getLogger(__name__)


def _recover_forever(stop):
    while not stop.wait(settings.JOB_STALE_S / 2):
        try:
            close_old_connections()
            recover_stale()
        except Exception:  # noqa: BLE001 - the database may be away for a while; try again later
            log.warning("Recovering stale jobs failed", exc_info=True)
        finally:
            connection.close()


class Command(BaseCommand):
    help = "Run background jobs (imports of large uploads, export files, backups)."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0,
                            help="Seconds between two looks at an empty queue (default 1).")
        parser.add_argument("--batch", action="store_true", help="Run what is queued, then exit.")

    def handle(self, *args, interval, batch, verbosity, **options):
        recovered = recover_stale()
        if recovered:
            self.stdout.write(f"Requeued or failed {len(recovered)} job(s) of a worker that stopped: {recovered}")
        stop = threading.Event()
        if not batch:
            threading.Thread(target=_recover_forever, args=(stop,), name="job-recovery", daemon=True).start()
        try:
            call_command("db_worker", interval=interval, batch=batch, reload=False, startup_delay=not batch,
                         verbosity=verbosity)
        finally:
            stop.set()
