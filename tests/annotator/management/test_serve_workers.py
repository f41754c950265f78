"""`manage.py serve --workers N`: N uvicorn worker processes on one socket, the trainer
started once by the supervising process, and Redis required for more than one worker."""
import os
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import CommandError, call_command

from annotator.management.commands import serve
from tests.annotator.modelloop.test_serve_loop import _alive, free_port, wait_until_up
from tests.annotator.modelloop.test_trainer_crash import ROOT, env_for, run


def test_it_refuses_zero_workers():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("serve", "--workers", "0", "--trainer", "none")


def test_more_than_one_worker_needs_redis(settings):
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="REDIS_URL"):
        call_command("serve", "--workers", "2", "--trainer", "none")


class FakeSupervisor:
    made = []

    def __init__(self, config, sockets):
        self.config, self.sockets = config, sockets
        self.ran = False
        FakeSupervisor.made.append(self)

    def run(self):
        self.ran = True


class FakeTrainer:
    made = []

    def __init__(self, publish):
        self.started = self.stopped = 0
        FakeTrainer.made.append(self)

    def start(self):
        self.started += 1

    def stop(self):
        self.stopped += 1


def test_the_workers_share_one_socket_and_one_trainer(settings, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"  # only checked, never connected to here
    FakeSupervisor.made, FakeTrainer.made = [], []
    monkeypatch.setattr(serve, "Multiprocess", FakeSupervisor)
    monkeypatch.setattr(serve, "ChildTrainer", FakeTrainer)
    call_command("serve", "--workers", "3", "--port", str(free_port()), "--trainer", "process")
    [supervisor] = FakeSupervisor.made
    assert supervisor.ran and supervisor.config.workers == 3 and len(supervisor.sockets) == 1
    supervisor.sockets[0].close()
    [trainer] = FakeTrainer.made
    assert (trainer.started, trainer.stopped) == (1, 1)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set (more than one worker shares Redis)")
def test_two_workers_serve_and_stop_with_their_trainer(tmp_path):
    """Real processes: two workers, the trainer child and the job worker child under the
    supervisor; a SIGTERM to the whole process group (as `timeout` or a service manager sends
    it) stops them all."""
    env = env_for(tmp_path)
    env["REDIS_URL"] = os.environ["REDIS_URL"]
    run(env, "manage.py", "migrate", "--noinput", "-v", "0")
    port = free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port), "--workers", "2",
                               "--trainer", "process", "--log-level", "warning"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server)
        deadline, children = time.monotonic() + 30, []
        while time.monotonic() < deadline and len(children) < 4:
            found = subprocess.run(["pgrep", "-P", str(server.pid), "-f", "multiprocessing.spawn"],
                                   capture_output=True, text=True).stdout.split()
            children = [int(pid) for pid in found]
            time.sleep(0.2)
        assert len(children) == 4, f"expected 2 workers, the trainer and the job worker, found {children}"
        # the trainer and the job worker lower their priority (SERVE_CHILD_NICE, 10) once set up
        base = _niceness(server.pid)
        expected = [base, base, min(19, base + 10), min(19, base + 10)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sorted(map(_niceness, children)) != expected:
            time.sleep(0.2)
        assert sorted(map(_niceness, children)) == expected
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(45)
        assert not [pid for pid in children if _alive(pid)]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


def _niceness(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])  # field 19, counted after the name
