"""A trainer killed with SIGKILL leaves no corrupt checkpoint and no half-written queue,
and the next one resumes: killed at each step between writing artifacts and committing
(deterministic injection), and at random moments. Subprocesses on a throwaway data dir and
database: SQLite, and PostgreSQL when the suite runs on it (a fresh database per test)."""
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.annotator.modelloop.loop_scripts import STEPS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def env_for(data_dir, database_url=""):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "DJANGO_"))}
    env.update(
        DATA_DIR=str(data_dir), SECRET_KEY="crash-test-" + "k" * 40, DJANGO_SETTINGS_MODULE="annotator.settings",
        TRAINER_PRETRAIN_BUDGET_S="2", TRAINER_FAST_MIN_INTERVAL_S="0", TRAINER_POLL_SECONDS="0.05",
        TRAINER_SLOW_EVERY="3", TRAINER_SLOW_IDLE_S="0", TRAINER_SLOW_BUDGET_S="1.5", TRAINER_LEASE_SECONDS="3",
        TRAINER_KEEP_VERSIONS="2", LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def postgres_url():
    """The PostgreSQL server the suite runs on (DATABASE_URL), or None."""
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


@pytest.fixture(params=["sqlite", "postgresql"])
def crash_env(request, tmp_path):
    """The environment of the subprocesses: their own data dir, and their own database."""
    if request.param == "postgresql" and postgres_url() is None:
        pytest.skip("needs PostgreSQL (set DATABASE_URL) for the PostgreSQL variant")
    yield from _environment(request.param, tmp_path)


@pytest.fixture
def suite_env(tmp_path):
    """As crash_env, on the database kind the suite runs on (PostgreSQL in CI's first pass)."""
    yield from _environment("postgresql" if postgres_url() else "sqlite", tmp_path)


def _environment(kind, tmp_path):
    if kind == "sqlite":
        yield env_for(tmp_path)
        return
    server = postgres_url()
    import psycopg

    name = f"crash_{uuid.uuid4().hex[:12]}"
    base = server.split("?", 1)[0].rsplit("/", 1)[0]
    maintenance = f"{base}/postgres"  # DATABASE_URL's own database may not exist (pytest makes test_*)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield env_for(tmp_path, f"{base}/{name}")
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(env, *args):
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def script(env, *args):
    return run(env, "-m", "tests.annotator.modelloop.loop_scripts", *args)


def test_a_kill_at_each_step_between_artifacts_and_commit_loses_nothing(crash_env):
    """Pretraining, then a fast path, killed at every step in turn: after each kill every
    committed artifact loads and the queue is one committed version's; the last trainer
    commits each step exactly once more (one pretraining in all) and catches up."""
    env = crash_env
    run(env, "manage.py", "migrate", "--noinput", "-v", "0")
    script(env, "setup")
    for kind in ("pretrain", "fast"):
        if kind == "fast":
            script(env, "label", "4")
        for step in STEPS:
            if kind == "fast" and step == "checkpoint-rename":
                continue  # a fast path writes no checkpoint
            out = subprocess.run([sys.executable, "-m", "tests.annotator.modelloop.loop_scripts", "die-at", kind,
                                  step], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            assert out.returncode == -signal.SIGKILL, (kind, step, out.returncode, out.stderr[-3000:])
            result = json.loads(script(env, "verify"))
            assert result["problems"] == [], (kind, step, result)
            committed = step == "after-commit"
            if kind == "pretrain":
                assert result["pretrain"] == (1 if committed else 0), (step, result)
            else:
                assert result["fast_labels"] == (4 if committed else -1), (step, result)
    script(env, "label", "2")
    script(env, "catch-up")
    result = json.loads(script(env, "verify"))
    assert result["problems"] == [] and result["pretrain"] == 1 and result["fast_labels"] == 6, result


def test_sigkill_at_random_moments_never_corrupts_and_resumes(suite_env):
    env = suite_env
    run(env, "manage.py", "migrate", "--noinput", "-v", "0")
    run(env, "-m", "tests.annotator.modelloop.loop_scripts", "setup")
    rng = random.Random(7)
    verified = []
    rounds = int(os.environ.get("CRASH_ROUNDS", "6"))  # the reliability scorecard runs 50
    expected = min(3 * rounds + 2, 90)  # labels in the end (the pool has 90 images)
    for round_ in range(rounds):
        trainer = subprocess.Popen([sys.executable, "manage.py", "trainer", "--name", f"victim-{round_}"],
                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(1.0, 7.0))
        run(env, "-m", "tests.annotator.modelloop.loop_scripts", "label", "3")
        time.sleep(rng.uniform(0.0, 2.0))
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(30)
        result = json.loads(run(env, "-m", "tests.annotator.modelloop.loop_scripts", "verify"))
        assert result["problems"] == [], result
        verified.append(result)
    # a last trainer (after the dead one's 3 s lease expired) resumes and catches up
    time.sleep(3.5)
    run(env, "-m", "tests.annotator.modelloop.loop_scripts", "label", "2")
    final = subprocess.Popen([sys.executable, "manage.py", "trainer", "--name", "survivor"],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            result = json.loads(run(env, "-m", "tests.annotator.modelloop.loop_scripts", "verify"))
            # the survivor holds the project (its signal handlers are in place) and caught up
            if result["fast_labels"] == expected and result["owner"] == "survivor":
                break
            time.sleep(1)
    finally:
        final.send_signal(signal.SIGTERM)
        assert final.wait(60) == 0
    assert result["problems"] == [] and result["fast_labels"] == expected, (result, verified)
    # once a checkpoint existed, restarts resumed from it instead of pretraining again
    assert result["pretrain"] <= 1 + sum(1 for v in verified if v["pretrain"] == 0)
