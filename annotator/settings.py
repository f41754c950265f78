"""Settings for the annotation app, read from environment variables with safe defaults.

Every variable is documented in docs/configuration.md. No setting needs a file edit:
the embedded default is SQLite under DATA_DIR and an in-memory channel layer; set
DATABASE_URL and REDIS_URL for PostgreSQL and Redis.
"""
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured


def envbool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_number(name, default, cast, kind):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return cast(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be {kind}, got {value!r}.") from exc


def envint(name, default):
    return _env_number(name, default, int, "an integer")


def envfloat(name, default):
    return _env_number(name, default, float, "a number")


def envlist(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return list(default)
    return [part.strip() for part in value.split(",") if part.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DATA_DIR") or BASE_DIR / "data").resolve()
MEDIA_ROOT = DATA_DIR / "media"
ARTIFACTS_ROOT = DATA_DIR / "artifacts"

DEBUG = envbool("DEBUG", False)

_DEV_SECRET_KEY = "django-insecure-development-only-key"
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY or SECRET_KEY == _DEV_SECRET_KEY or SECRET_KEY.startswith("django-insecure"):
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is missing or is the development default. Set the SECRET_KEY environment "
            "variable to a long random string (python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or set DEBUG=1 for local development only."
        )
    SECRET_KEY = SECRET_KEY or _DEV_SECRET_KEY

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "channels",
    "annotator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "annotator.urls"
ASGI_APPLICATION = "annotator.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite (WAL, busy timeout, IMMEDIATE transactions so writers queue instead of
# failing) under DATA_DIR by default; PostgreSQL (or any dj-database-url URL) via DATABASE_URL.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 0))}
else:
    SQLITE_BUSY_TIMEOUT_MS = envint("SQLITE_BUSY_TIMEOUT_MS", 20000)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            "OPTIONS": {
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "transaction_mode": "IMMEDIATE",
                "init_command": (
                    "PRAGMA journal_mode=WAL;"
                    "PRAGMA synchronous=NORMAL;"
                    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS};"
                    "PRAGMA foreign_keys=ON;"
                ),
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Live events: in-memory for one process; Redis when REDIS_URL is set (several workers).
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
# The embedded server serves static files itself; behind a proxy set SERVE_STATIC=0.
SERVE_STATIC = envbool("SERVE_STATIC", True)
MEDIA_URL = "media/"  # never served directly: images go through a membership-checked view

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project-list"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so anonymous API calls get 401 with a WWW-Authenticate header.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_RATES": {"auth-token": os.environ.get("AUTH_TOKEN_RATE", "20/min")},
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # `?format=` is reserved for exports, not DRF's renderer switch.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Active-learning annotator API",
    "DESCRIPTION": "Projects, image import, leasing the next item, annotations and statistics.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Import limits (bytes and pixels per image; archive bomb limits).
IMPORT_MAX_FILE_BYTES = envint("IMPORT_MAX_FILE_BYTES", 50 * 1024 * 1024)
IMPORT_MAX_PIXELS = envint("IMPORT_MAX_PIXELS", 50_000_000)
IMPORT_MAX_ARCHIVE_MEMBERS = envint("IMPORT_MAX_ARCHIVE_MEMBERS", 200_000)
IMPORT_MAX_ARCHIVE_BYTES = envint("IMPORT_MAX_ARCHIVE_BYTES", 4 * 1024 * 1024 * 1024)
IMPORT_MAX_ARCHIVE_RATIO = envint("IMPORT_MAX_ARCHIVE_RATIO", 200)
DISPLAY_MAX_SIDE = envint("DISPLAY_MAX_SIDE", 1600)
# Uploads above this size stream to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = envint("UPLOAD_MAX_FILES", 5000)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

LEASE_SECONDS = envint("LEASE_SECONDS", 300)



# The model loop (docs/configuration.md explains each one).
TRAINER_LEASE_SECONDS = envint("TRAINER_LEASE_SECONDS", 30)  # a dead trainer's projects move after this
TRAINER_POLL_SECONDS = envfloat("TRAINER_POLL_SECONDS", 1.0)
TRAINER_PRETRAIN_BUDGET_S = envfloat("TRAINER_PRETRAIN_BUDGET_S", 180.0)
TRAINER_PRETRAIN_EPOCHS = envint("TRAINER_PRETRAIN_EPOCHS", 0)  # 0: the preset's (the time budget ends it sooner)
TRAINER_FAST_MIN_INTERVAL_S = envfloat("TRAINER_FAST_MIN_INTERVAL_S", 2.0)
TRAINER_SLOW_EVERY = envint("TRAINER_SLOW_EVERY", 50)  # new labels between two fine-tunings (0 = never)
TRAINER_SLOW_IDLE_S = envfloat("TRAINER_SLOW_IDLE_S", 20.0)  # debounce: quiet seconds before a fine-tuning
TRAINER_SLOW_BUDGET_S = envfloat("TRAINER_SLOW_BUDGET_S", 60.0)
TRAINER_MAX_FAILURES = envint("TRAINER_MAX_FAILURES", 5)  # then wait for new data instead of retrying
TRAINER_KEEP_VERSIONS = envint("TRAINER_KEEP_VERSIONS", 5)  # fast-path probability files kept per project
TRAINER_MAX_IMAGE_SIDE = envint("TRAINER_MAX_IMAGE_SIDE", 64)  # pool images are loaded at most this size
TRAINER_SEED = envint("TRAINER_SEED", 0)
# Pretrained backbones: weight files are read from here (and from torch hub's cache), never
# downloaded at run time; `manage.py weights` lists and adds them.
WEIGHTS_DIR = Path(os.environ.get("WEIGHTS_DIR") or DATA_DIR / "weights").resolve()
EMBED_BATCH_SIZE = envint("EMBED_BATCH_SIZE", 32)  # images per batch when a backbone embeds the pool
EMBED_WORKERS = envint("EMBED_WORKERS", -1)  # image-decoding processes; -1: min(4, cores - 1)
# CLIP-like encoders: class names give zero-shot guesses, faded out per class over this many
# labels of the class (mlcore.zeroshot); 0 turns zero-shot guesses off.
ZERO_SHOT_FADE_LABELS = envfloat("ZERO_SHOT_FADE_LABELS", 5.0)
# Largest model checkpoint an owner may upload to start the model from (transfer learning).
CHECKPOINT_UPLOAD_MAX_MB = envint("CHECKPOINT_UPLOAD_MAX_MB", 500)
# The dashboard lists labeled items whose held-out guess disagrees with at least this confidence.
SUSPECT_MIN_CONFIDENCE = envfloat("SUSPECT_MIN_CONFIDENCE", 0.8)
# `manage.py serve` runs the loop too: "process" (a child process), "thread", or "none".
SERVE_TRAINER = os.environ.get("SERVE_TRAINER", "process")
for _name, _value, _least in (
    ("TRAINER_LEASE_SECONDS", TRAINER_LEASE_SECONDS, 3),
    ("TRAINER_POLL_SECONDS", TRAINER_POLL_SECONDS, 0.01),
    ("TRAINER_PRETRAIN_BUDGET_S", TRAINER_PRETRAIN_BUDGET_S, 1),
    ("TRAINER_PRETRAIN_EPOCHS", TRAINER_PRETRAIN_EPOCHS, 0),
    ("TRAINER_FAST_MIN_INTERVAL_S", TRAINER_FAST_MIN_INTERVAL_S, 0),
    ("TRAINER_SLOW_EVERY", TRAINER_SLOW_EVERY, 0),
    ("TRAINER_SLOW_IDLE_S", TRAINER_SLOW_IDLE_S, 0),
    ("TRAINER_SLOW_BUDGET_S", TRAINER_SLOW_BUDGET_S, 1),
    ("TRAINER_MAX_FAILURES", TRAINER_MAX_FAILURES, 1),
    ("TRAINER_KEEP_VERSIONS", TRAINER_KEEP_VERSIONS, 0),
    ("TRAINER_MAX_IMAGE_SIDE", TRAINER_MAX_IMAGE_SIDE, 8),
    ("EMBED_BATCH_SIZE", EMBED_BATCH_SIZE, 1),
    ("EMBED_WORKERS", EMBED_WORKERS, -1),
    ("ZERO_SHOT_FADE_LABELS", ZERO_SHOT_FADE_LABELS, 0),
    ("CHECKPOINT_UPLOAD_MAX_MB", CHECKPOINT_UPLOAD_MAX_MB, 1),
    ("SUSPECT_MIN_CONFIDENCE", SUSPECT_MIN_CONFIDENCE, 0),
):
    if _value < _least:
        raise ImproperlyConfigured(f"{_name} must be at least {_least}, got {_value}.")
if SUSPECT_MIN_CONFIDENCE > 1:
    raise ImproperlyConfigured(f"SUSPECT_MIN_CONFIDENCE must be at most 1, got {SUSPECT_MIN_CONFIDENCE}.")
if SERVE_TRAINER not in {"process", "thread", "none"}:
    raise ImproperlyConfigured(f"SERVE_TRAINER must be process, thread or none, got {SERVE_TRAINER!r}.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "faiss.loader": {"level": "WARNING"}},
}
