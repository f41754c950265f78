"""The embedded topology as `make demo` runs it: `manage.py serve` with the trainer in a
child process, whose events reach a browser's websocket through the server's relay."""
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from websockets.sync.client import connect

from tests.annotator.modelloop.test_trainer_crash import ROOT, env_for, run

pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def login(base, username, password):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
    opener.open(urllib.request.Request(f"{base}/accounts/login/", data=body.encode(), headers={"Referer": base}))
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def wait_until_up(base, server, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read().decode()[-3000:]
        try:
            urllib.request.urlopen(f"{base}/accounts/login/", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("the server did not come up")


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_serve_runs_the_loop_and_pushes_its_events_live(tmp_path, mode):
    env = env_for(tmp_path)
    env["TRAINER_SLOW_EVERY"] = "0"
    run(env, "manage.py", "migrate", "--noinput", "-v", "0")
    run(env, "-m", "tests.annotator.modelloop.loop_scripts", "setup")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port), "--trainer", mode,
                               "--log-level", "warning"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        wait_until_up(base, server)
        cookie = login(base, "alice", "x" * 12)
        seen = []
        with connect(f"ws://127.0.0.1:{port}/ws/projects/1/",
                     additional_headers={"Cookie": cookie, "Origin": base}) as ws:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
                seen.append(message)
                if message["type"] == "queue":
                    break
        phases = [m["status"]["phase"] for m in seen if m["type"] == "status"]
        assert "pretraining" in phases, phases
        assert seen[-1]["type"] == "queue", phases
    finally:
        server.send_signal(signal.SIGINT if mode == "process" else signal.SIGTERM)
        code = server.wait(60)
    assert code == 0, server.stderr.read().decode()[-3000:]


def test_a_killed_server_leaves_no_orphan_trainer(tmp_path):
    env = env_for(tmp_path)
    run(env, "manage.py", "migrate", "--noinput", "-v", "0")
    port = free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port), "--trainer", "process"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_up(f"http://127.0.0.1:{port}", server)
    deadline = time.monotonic() + 30
    children = []
    while time.monotonic() < deadline and not children:
        found = subprocess.run(["pgrep", "-P", str(server.pid), "-f", "multiprocessing.spawn"],
                               capture_output=True, text=True).stdout.split()
        children = [int(pid) for pid in found]
        time.sleep(0.2)
    assert children, "no trainer child process"
    server.kill()
    server.wait(10)
    deadline = time.monotonic() + 40  # the child may still be starting Django under load
    alive = children
    while time.monotonic() < deadline and alive:
        alive = [pid for pid in alive if _alive(pid)]
        time.sleep(0.2)
    assert not alive, "the trainer outlived its server"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[1].split()[0] != "Z"
