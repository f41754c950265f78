"""Backup jobs: `manage.py backup --background` queues one; the worker writes the archive
(annotator.operations.backup) to BACKUP_DIR. A site-wide job: no project, so no project page
or API lists it (the admin does)."""
import logging
import time
from pathlib import Path

from django.conf import settings

from annotator.jobs import service
from annotator.jobs.registry import JobKind, JobRefused, register
from annotator.operations.backup import BackupError, backup

log = logging.getLogger(__name__)
KIND = "backup"


def start_backup(*, user=None):
    return service.start(KIND, project=None, user=user, params={})


def _run(job, progress):
    folder = Path(settings.BACKUP_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"backup-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-job{job.pk}.tar.gz"

    def report(done, total):
        progress(done / total if total else 0.0, f"{done} of {total} files")

    progress(0.0, "Dumping the database…")
    try:
        manifest = backup(path, progress=False, log=log.warning, on_progress=report)
    except BackupError as exc:
        raise JobRefused(str(exc)) from exc
    return {"path": str(path), "files": manifest["files"], "missing": len(manifest["missing"]),
            "size": path.stat().st_size}


register(JobKind(name=KIND, title="Backup", run=_run))
