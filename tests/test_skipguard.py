"""The CI guard against silent skips (tests/skipguard.py), run on a throwaway test file."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPING = """
import pytest
def test_needs_a_server():
    pytest.skip("needs PostgreSQL for this")
def test_needs_a_browser():
    pytest.skip("Chromium is not installed at /usr/bin/chromium")
def test_runs():
    assert True
"""


def pytest_run(tmp_path, *args):
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    return subprocess.run([sys.executable, "-m", "pytest", "-c", "/dev/null", "-p", "tests.skipguard",
                           "-p", "no:cacheprovider", "-p", "no:django", str(tmp_path), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_skip_ci_does_not_expect_fails_the_run(tmp_path):
    out = pytest_run(tmp_path, "--fail-on-skip", "--allow-skip", "needs PostgreSQL")
    assert out.returncode == 1, out.stdout
    assert "test_needs_a_browser: Chromium is not installed" in out.stdout
    assert "test_needs_a_server:" not in out.stdout.split("skips CI does not expect")[1]


def test_allowed_skips_and_plain_runs_pass(tmp_path):
    allowed = pytest_run(tmp_path, "--fail-on-skip", "--allow-skip", "needs PostgreSQL", "--allow-skip", "Chromium")
    assert allowed.returncode == 0, allowed.stdout
    assert pytest_run(tmp_path).returncode == 0  # without the flag (make test on a laptop)
