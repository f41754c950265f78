"""A trainer killed with SIGKILL at random moments leaves no corrupt checkpoint and no
half-written queue, and the next one resumes (subprocesses on a throwaway SQLite dir)."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def env_for(data_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "DJANGO_"))}
    env.update(
        DATA_DIR=str(data_dir), SECRET_KEY="crash-test-" + "k" * 40, DJANGO_SETTINGS_MODULE="annotator.settings",
        TRAINER_PRETRAIN_BUDGET_S="2", TRAINER_FAST_MIN_INTERVAL_S="0", TRAINER_POLL_SECONDS="0.05",
        TRAINER_SLOW_EVERY="3", TRAINER_SLOW_IDLE_S="0", TRAINER_SLOW_BUDGET_S="1.5", TRAINER_LEASE_SECONDS="3",
        TRAINER_KEEP_VERSIONS="2", LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
    )
    return env


def run(env, *args):
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_sigkill_at_random_moments_never_corrupts_and_resumes(tmp_path):
    env = env_for(tmp_path)
    run(env, "manage.py", "migrate", "--noinput", "-v", "0")
    run(env, "-m", "tests.annotator.modelloop.loop_scripts", "setup")
    rng = random.Random(7)
    verified = []
    for round_ in range(6):
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
            if result["fast_labels"] == 20:
                break
            time.sleep(1)
    finally:
        final.send_signal(signal.SIGTERM)
        assert final.wait(60) == 0
    assert result["problems"] == [] and result["fast_labels"] == 20, (result, verified)
    # once a checkpoint existed, restarts resumed from it instead of pretraining again
    assert result["pretrain"] <= 1 + sum(1 for v in verified if v["pretrain"] == 0)
