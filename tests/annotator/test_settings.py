"""Settings come from the environment, with safe defaults."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
from django.conf import settings
django.setup()
from django.db import connection
out = {
    "engine": settings.DATABASES["default"]["ENGINE"],
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "cache": settings.CACHES["default"]["BACKEND"],
    "debug": settings.DEBUG,
}
if connection.vendor == "sqlite":
    with connection.cursor() as cursor:
        out["journal_mode"] = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        out["busy_timeout"] = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
print(json.dumps(out))
"""


def _run(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL"}}
    base.update({"DJANGO_SETTINGS_MODULE": "annotator.settings", "DATA_DIR": str(tmp_path)}, **env)
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=base, capture_output=True, text=True)


def test_it_refuses_to_start_without_a_secret_key_outside_debug(tmp_path):
    result = _run(tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is missing" in result.stderr


def test_it_refuses_the_development_key_outside_debug(tmp_path):
    result = _run(tmp_path, SECRET_KEY="django-insecure-development-only-key")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_starts_without_a_key(tmp_path):
    result = _run(tmp_path, DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is True


def test_the_default_is_sqlite_in_wal_mode_with_a_busy_timeout_and_in_memory_channels(tmp_path):
    result = _run(tmp_path, SECRET_KEY="s" * 50)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["engine"] == "django.db.backends.sqlite3"
    assert out["journal_mode"] == "wal"
    assert out["busy_timeout"] >= 1000
    assert out["layer"] == "channels.layers.InMemoryChannelLayer"
    assert out["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert (tmp_path / "db.sqlite3").exists()


def test_database_url_and_redis_url_switch_to_postgresql_and_redis(tmp_path):
    result = _run(
        tmp_path,
        SECRET_KEY="s" * 50,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["engine"] == "django.db.backends.postgresql"
    assert out["layer"] == "channels_redis.core.RedisChannelLayer"
    assert out["cache"] == "django.core.cache.backends.redis.RedisCache"  # throttle counters shared


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("TRAINER_LEASE_SECONDS", "1", "TRAINER_LEASE_SECONDS must be at least 3"),
        ("TRAINER_SLOW_BUDGET_S", "abc", "TRAINER_SLOW_BUDGET_S must be a number"),
        ("TRAINER_SLOW_EVERY", "-1", "TRAINER_SLOW_EVERY must be at least 0"),
        ("SERVE_TRAINER", "gpu", "SERVE_TRAINER must be process, thread or none"),
        ("LOGIN_FAILURE_LIMIT", "0", "LOGIN_FAILURE_LIMIT must be at least 1"),
        ("API_TOKEN_TTL_DAYS", "0", "API_TOKEN_TTL_DAYS must be at least 1"),
        ("TRUSTED_PROXIES", "10.0.0.1,proxy.local", "TRUSTED_PROXIES has 'proxy.local'"),
    ],
)
def test_it_refuses_bad_trainer_settings_with_a_sentence(tmp_path, name, value, message):
    result = _run(tmp_path, SECRET_KEY="k" * 50, **{name: value})
    assert result.returncode != 0
    assert message in result.stderr
