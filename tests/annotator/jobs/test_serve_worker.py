"""The embedded default as `make demo` runs it: `manage.py serve` starts the task worker as a
child, which runs a job queued while no server was up (the queue is a table: it outlives every
process), and stops with the server."""
import json
import signal
import subprocess
import sys
import time

import pytest

from tests.annotator.modelloop.test_serve_loop import free_port, wait_until_up
from tests.annotator.modelloop.test_trainer_crash import ROOT, env_for, run

pytestmark = pytest.mark.slow

JOB_STATE = "from annotator.models import Job; import json; print(json.dumps(list(Job.objects.values('status', 'result'))))"


def test_serve_runs_a_job_queued_while_it_was_down(tmp_path):
    env = env_for(tmp_path)
    env["BACKUP_DIR"] = str(tmp_path / "backups")
    run(env, "manage.py", "migrate", "--noinput", "-v", "0")
    run(env, "manage.py", "backup", "--background")  # no server, no worker: it waits in the table
    port = free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port), "--trainer", "none",
                               "--log-level", "warning"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            [job] = json.loads(run(env, "manage.py", "shell", "-v", "0", "-c", JOB_STATE).strip().splitlines()[-1])
            if job["status"] in ("succeeded", "failed"):
                break
            time.sleep(1)
        assert job["status"] == "succeeded", job
        assert list((tmp_path / "backups").glob("backup-*-job1.tar.gz"))
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(60)
    assert code == 0, server.stderr.read().decode()[-3000:]
