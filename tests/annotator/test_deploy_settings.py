"""Deployment settings: DEPLOY_HTTPS passes `check --deploy`, the CSP header is strict, static
files come from WhiteNoise, PostgreSQL connections are health-checked."""
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def _run(args, tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DEBUG", "DEPLOY_HTTPS",
                                                            "SECURE_COOKIES", "DATABASE_URL", "STATIC_MANIFEST",
                                                            # set by the browser tests' modules when collected
                                                            "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    base.update(DJANGO_SETTINGS_MODULE="annotator.settings", DATA_DIR=str(tmp_path),
                SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="label.example.com",
                STATIC_ROOT=str(tmp_path / "static"), **env)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120)


PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({name: getattr(settings, name, None) for name in (
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
    "SECURE_PROXY_SSL_HEADER")} | {"health": settings.DATABASES["default"].get("CONN_HEALTH_CHECKS")}))
"""


def test_check_deploy_reports_no_issue_with_deploy_https(tmp_path):
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path, DEPLOY_HTTPS="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_deploy_https(tmp_path):
    result = _run(["manage.py", "check", "--deploy"], tmp_path)
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_deploy_https_turns_on_hsts_redirect_secure_cookies_and_the_proxy_header(tmp_path):
    result = _run(["-c", PROBE], tmp_path, DEPLOY_HTTPS="1")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"] and values["SECURE_SSL_REDIRECT"]
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_secure_cookies_alone_still_marks_the_cookies_secure(tmp_path):
    result = _run(["-c", PROBE], tmp_path, SECURE_COOKIES="1")
    values = json.loads(result.stdout)
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert not values["SECURE_SSL_REDIRECT"] and values["SECURE_PROXY_SSL_HEADER"] is None


def test_postgresql_connections_are_health_checked(tmp_path):
    result = _run(["-c", PROBE], tmp_path, DATABASE_URL="postgres://u@127.0.0.1:5432/x")
    assert json.loads(result.stdout)["health"] is True


@pytest.mark.django_db
def test_pages_carry_a_strict_content_security_policy():
    response = Client().get("/accounts/login/")
    policy = response.headers["Content-Security-Policy"]
    directives = dict((part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"] and directives["style-src"] == ["'self'"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


@pytest.mark.django_db
def test_static_files_are_served_by_whitenoise():
    response = Client().get("/static/css/app.css")
    assert response.status_code == 200
    assert type(response).__name__ == "WhiteNoiseFileResponse"  # Django's test client has no static handler
    response.close()
