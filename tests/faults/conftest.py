"""Private services for the fault tests: a PostgreSQL 15 cluster and a Redis server of their
own (so that stopping them disturbs no one else), a small tmpfs, and `manage.py serve` in a
subprocess with simulated annotators set up by `manage.py soak setup`.

Every fixture stops and removes what it started, whatever happens."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PG_BIN = Path(os.environ.get("FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc, timeout=20):
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def write_figures(name, figures):
    """test-artifacts/faults-<name>.json: the figures docs/reliability.md quotes."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"faults-{name}.json").write_text(json.dumps(figures, indent=1, default=str))


# --- PostgreSQL ---------------------------------------------------------------------------------


class PrivatePostgres:
    """A throwaway cluster on a free port: initdb, pg_ctl start/stop/restart. Run as the
    `postgres` OS user when this process is root (PostgreSQL refuses to run as root)."""

    def __init__(self, base):
        self.base = Path(base)
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _cmd(self, tool, *args):
        command = [str(PG_BIN / tool), *args]
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def _run(self, tool, *args, timeout=120):
        out = subprocess.run(self._cmd(tool, *args), capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({out.returncode}): {out.stderr[-2000:]}\n"
                               f"{self.server_log()}")
        return out.stdout

    def server_log(self):
        return self.log.read_text()[-3000:] if self.log.exists() else ""

    def init(self):
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8",
                  "--locale=C")

    def options(self):
        return (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.base} "
                "-c max_connections=100")

    def start(self):
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self.options(), "-w", "-t", "60",
                  "start")

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self):
        out = subprocess.run(self._cmd("pg_ctl", "-D", str(self.data), "status"), capture_output=True, text=True)
        return out.returncode == 0


@pytest.fixture
def private_postgres():
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15's server programs are not in {PG_BIN} (apt-get install postgresql-15, or set "
                    "FAULTS_PG_BIN)")
    base = Path(tempfile.mkdtemp(prefix="faults-pg-"))
    server = PrivatePostgres(base)
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            if server.data.exists() and server.running():
                server.stop("immediate")
        finally:
            shutil.rmtree(base, ignore_errors=True)


# --- Redis --------------------------------------------------------------------------------------


class PrivateRedis:
    def __init__(self, base):
        self.base = Path(base)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self, timeout=20):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.base), "--logfile", str(self.base / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.base / "redis.log").read_text()[-2000:]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("the private redis-server did not start")

    def stop(self):
        stop_process(self.proc, timeout=10)
        self.proc = None


@pytest.fixture
def private_redis():
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    base = Path(tempfile.mkdtemp(prefix="faults-redis-"))
    server = PrivateRedis(base)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# --- a small file system ------------------------------------------------------------------------


@pytest.fixture
def small_fs():
    """A 4 MiB tmpfs, mounted here and unmounted at teardown."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small file system")
    mount = Path(tempfile.mkdtemp(prefix="faults-fs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def fill(path, leave_bytes):
    """Fill the file system of `path` until `leave_bytes` (rounded to its blocks) are free; the
    filler file is returned, so that deleting it frees the space again."""
    filler = Path(path) / "filler.bin"
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    size = max(0, free - leave_bytes)
    with open(filler, "wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, size) if size else None
    return filler


def free_bytes(path):
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


# --- the server and its annotators --------------------------------------------------------------


def app_env(data_dir, database_url="", redis_url="", **extra):
    """The environment of `manage.py` subprocesses: their own data dir, database and Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "DJANGO_"))}
    env.update(DATA_DIR=str(data_dir), SECRET_KEY="faults-test-" + "k" * 40, DJANGO_SETTINGS_MODULE="annotator.settings",
               LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT), READY_REQUIRE_TRAINER="0")
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


def manage(env, *args, timeout=300):
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"manage.py {' '.join(args)}: {out.stderr[-3000:]}"
    return out.stdout


OWNER_PASSWORD = "faults-owner-password-1"


def soak_setup(env, tmp_path, annotators, images):
    """`manage.py soak setup` (users, tokens, a project of generated images), with a password
    for the owner so that a test can sign in for a websocket. Returns the setup's JSON."""
    out = tmp_path / "soak.json"
    # the password first: a new password revokes the account's tokens
    manage(env, "shell", "-c", (
        "from django.core.management import call_command; from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user('fault-owner', password='{OWNER_PASSWORD}'); "
        f"call_command('soak', 'setup', '--annotators', '{annotators}', '--images', '{images}', "
        f"'--out', '{out}', '--prefix', 'fault', verbosity=0)"
    ))
    return json.loads(out.read_text())


class Server:
    """`manage.py serve --trainer none` on a free port; its output goes to a file."""

    def __init__(self, env, log_path):
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc = None

    def start(self, timeout=90):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port), "--trainer", "none",
             "--log-level", "warning"], cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"serve did not come up:\n{self.output()}")

    def output(self):
        self.log.flush()
        return Path(self.log_path).read_text(errors="replace")[-5000:]

    def stop(self):
        stop_process(self.proc)
        if self.proc is not None:
            self.log.close()

    def get(self, path, timeout=10):
        """(status, JSON body or None)."""
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as reply:
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body)
            except ValueError:
                return exc.code, body[:300].decode(errors="replace")


def annotators_of(plan, n=None):
    people = [tuple(p) for p in plan["annotators"]]
    return people[:n] if n else people


@pytest.fixture
def app_database():
    """A database URL of its own for `manage.py` subprocesses: a fresh database on the suite's
    PostgreSQL (DATABASE_URL, as CI's first pass runs), dropped afterwards; "" (SQLite in the
    subprocess's DATA_DIR) when the suite runs on SQLite."""
    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith(("postgres://", "postgresql://")):
        yield ""
        return
    import uuid

    import psycopg

    name = f"faults_{uuid.uuid4().hex[:12]}"
    base = server.split("?", 1)[0].rsplit("/", 1)[0]
    maintenance = f"{base}/postgres"
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
