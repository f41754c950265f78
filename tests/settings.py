"""Test settings: the production settings module with a throwaway data dir and key."""
import os
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-" + "x" * 40)
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="annotator-tests-"))

# pytest-xdist (`-n 2` in CI): each worker gets its own data dir (so its own SQLite file) and
# its own Redis database, so channel groups and cache keys (project ids repeat across the
# workers' test databases) never cross. pytest-django names the PostgreSQL test databases
# per worker itself. Set in the environment, so servers the tests start inherit it.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and os.environ.get("TESTS_WORKER_ISOLATED") != _worker:
    os.environ["TESTS_WORKER_ISOLATED"] = _worker  # once: a subprocess inherits the result
    _data = os.path.join(os.environ["DATA_DIR"], _worker)
    os.makedirs(_data, exist_ok=True)
    os.environ["DATA_DIR"] = _data
    _base, _, _db = os.environ.get("REDIS_URL", "").rpartition("/")
    if _db.isdigit():
        os.environ["REDIS_URL"] = f"{_base}/{10 + int(_worker[2:])}"

from annotator.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A file, not Django's shared-cache in-memory database: threads in tests (the trainer, a
# live server) then get WAL and the busy timeout like production instead of "table locked".
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}  # noqa: F405

# Static files straight from static/ (no collectstatic, no manifest) whatever STATIC_ROOT holds.
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = DATA_DIR / "staticfiles"  # noqa: F405  (exists, so WhiteNoise does not warn about it)
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# The suite runs on plain connections (as CI always has) unless DB_POOL_SIZE is set, e.g. to
# run the PostgreSQL fault tests with the pool that `serve` uses by default (size it above a
# test's thread count: docs/testing.md).
if "DB_POOL_SIZE" not in os.environ:
    DATABASES["default"].get("OPTIONS", {}).pop("pool", None)  # noqa: F405
