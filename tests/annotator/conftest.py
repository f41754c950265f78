"""Fixtures shared by the web app's test folders (the personas live in tests/conftest.py)."""
import pytest
from django.core.management import call_command


@pytest.fixture
def weights_dir(settings, tmp_path, monkeypatch):
    """An empty WEIGHTS_DIR (not created yet), and an empty torch hub cache so the machine's
    own is not seen."""
    settings.WEIGHTS_DIR = tmp_path / "weights"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return settings.WEIGHTS_DIR

@pytest.fixture
def run_worker(settings, monkeypatch):
    """`manage.py jobs_worker --batch`, in this process. django-tasks' worker closes the
    database connection between tasks (as a request would), which would close the test's
    transaction: that step is skipped here."""
    settings.JOB_RETRY_DELAY_S = 0  # retries are due at once, so one batch runs them too
    # No heartbeat from a second thread: it would wait on the test's open write transaction
    # (SQLite). tests/annotator/jobs/test_heartbeat.py checks it with committed rows.
    settings.JOB_HEARTBEAT_S = 3600
    monkeypatch.setattr("django_tasks_db.management.commands.db_worker.close_old_connections", lambda: None)

    def run():
        call_command("jobs_worker", batch=True, verbosity=0)

    return run
