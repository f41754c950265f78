"""What `serve` does for the latency of labeling requests: a PostgreSQL connection pool per
process by default, and trainer/jobs children at a lower CPU priority than the web workers."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

POOL_PROBE = """
import json
from django.conf import settings
options = settings.DATABASES["default"].get("OPTIONS", {})
print(json.dumps({"pool": options.get("pool"), "max_age": settings.DATABASES["default"].get("CONN_MAX_AGE", 0)}))
"""


def _settings(**env):
    base = {k: v for k, v in os.environ.items() if k not in {"DB_POOL_SIZE", "DB_CONN_MAX_AGE", "DATABASE_URL"}}
    base.update(DJANGO_SETTINGS_MODULE="annotator.settings", SECRET_KEY="k" * 50, **env)
    result = subprocess.run([sys.executable, "-c", POOL_PROBE], cwd=ROOT, env=base, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_postgresql_gets_a_pool_of_8_by_default():
    out = _settings(DATABASE_URL="postgres://u@127.0.0.1:5432/x")
    assert out == {"pool": {"min_size": 1, "max_size": 8}, "max_age": 0}


@pytest.mark.parametrize("env, max_age", [({"DB_POOL_SIZE": "0"}, 0), ({"DB_CONN_MAX_AGE": "60"}, 60)])
def test_no_pool_when_turned_off_or_with_kept_connections(env, max_age):
    assert _settings(DATABASE_URL="postgres://u@127.0.0.1:5432/x", **env) == {"pool": None, "max_age": max_age}


def test_the_pool_size_is_configurable_and_sqlite_has_none():
    assert _settings(DATABASE_URL="postgres://u@127.0.0.1:5432/x", DB_POOL_SIZE="3")["pool"]["max_size"] == 3
    assert _settings(DB_POOL_SIZE="3")["pool"] is None


NICE_PROBE = """
import os, sys
from annotator.management.worker_child import lower_priority
before = os.nice(0)
print(before, lower_priority(int(sys.argv[1])), os.nice(0))
"""


@pytest.mark.parametrize("step", [10, 50, 0])
def test_lower_priority_adds_niceness_up_to_19(step):
    result = subprocess.run([sys.executable, "-c", NICE_PROBE, str(step)], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    before, returned, after = map(int, result.stdout.split())
    assert returned == after == min(19, before + step)
