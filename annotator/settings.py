"""Settings for the annotation app, read from environment variables with safe defaults.

Every variable is documented in docs/configuration.md. No setting needs a file edit:
the embedded default is SQLite under DATA_DIR and an in-memory channel layer; set
DATABASE_URL and REDIS_URL for PostgreSQL and Redis.
"""
import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from annotator.env import envbool, envfloat, envint, envlist

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
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "channels",
    "axes",
    "django_tasks",
    "django_tasks_db",
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
    # A database that cannot be reached answers 503 + Retry-After, not 500 (operations/unavailable.py).
    "annotator.operations.unavailable.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a lockout flagged during the view into the 429 page.
    "axes.middleware.AxesMiddleware",
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
    # DB_CONN_MAX_AGE: 0 under `serve` (a thread per request); DB_POOL_SIZE: a pool per process, 0: none
    DB_CONN_MAX_AGE, DB_POOL_SIZE = envint("DB_CONN_MAX_AGE", 0), envint("DB_POOL_SIZE", 8)
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=DB_CONN_MAX_AGE, conn_health_checks=True)}
    if DB_POOL_SIZE > 0 and not DB_CONN_MAX_AGE and DATABASES["default"]["ENGINE"].endswith("postgresql"):
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": DB_POOL_SIZE}
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
# While the database cannot be reached, requests answer 503 with this Retry-After (seconds).
UNAVAILABLE_RETRY_AFTER_S = envint("UNAVAILABLE_RETRY_AFTER_S", 2)
if UNAVAILABLE_RETRY_AFTER_S < 1:
    raise ImproperlyConfigured(f"UNAVAILABLE_RETRY_AFTER_S must be at least 1, got {UNAVAILABLE_RETRY_AFTER_S}.")

# Live events and the cache (throttle counters): in-memory for one process; Redis when
# REDIS_URL is set, so that every web process shares them.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "annotator",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

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
MEDIA_URL = "media/"  # never served directly: images go through a membership-checked view

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project-list"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so anonymous API calls get 401 with a WWW-Authenticate header.
        "annotator.accounts.tokens.ApiTokenAuthentication",
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

# Authentication hardening (docs/configuration.md, "Sign-in and tokens").
# The client's address: X-Forwarded-For is believed only when the connecting peer is one of
# TRUSTED_PROXIES (IPs or CIDRs), and then only up to the rightmost address that is not a
# trusted proxy. Empty (the default): no proxy header is believed. uvicorn (`manage.py
# serve`), django-axes and the API's throttles all follow this one rule
# (annotator.accounts.client_address).
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES", [])
LOGIN_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 10)  # wrong passwords per (username, address)...
LOGIN_COOLOFF_MINUTES = envint("LOGIN_COOLOFF_MINUTES", 15)  # ...within this, then locked for this long
API_TOKEN_TTL_DAYS = envint("API_TOKEN_TTL_DAYS", 30)
for _name, _value in (("LOGIN_FAILURE_LIMIT", LOGIN_FAILURE_LIMIT), ("LOGIN_COOLOFF_MINUTES", LOGIN_COOLOFF_MINUTES),
                      ("API_TOKEN_TTL_DAYS", API_TOKEN_TTL_DAYS)):
    if _value < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, got {_value}.")
for _entry in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_entry, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES has {_entry!r}, which is not an IP address or network (such as 10.0.0.0/8)."
        ) from _exc

AUTHENTICATION_BACKENDS = [
    # Refuses a locked-out (username, address) before the password is checked.
    "annotator.accounts.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# django-axes with its database handler: attempts are rows, so every process (several web
# workers, with or without Redis, SQLite included) counts the same failures, lockouts survive
# a restart, and the admin lists them (`manage.py axes_reset` clears them). The cache
# handler would count per process whenever the cache is local memory (no REDIS_URL).
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "annotator.accounts.client_address.client_ip"
AXES_LOCKOUT_CALLABLE = "annotator.accounts.lockout.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # failures only: no row per successful sign-in
AXES_VERBOSE = False

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

# Request limits, media and quotas (docs/configuration.md explains each one).
# Bodies are refused with 413 before they are read (annotator/request_limits.py): every request
# may carry REQUEST_MAX_BYTES; the upload routes UPLOAD_MAX_REQUEST_BYTES, for their owners only.
REQUEST_MAX_BYTES = envint("REQUEST_MAX_BYTES", 2 * 1024 * 1024)
UPLOAD_MAX_REQUEST_BYTES = envint("UPLOAD_MAX_REQUEST_BYTES", 1024 * 1024 * 1024)
# Who serves image bytes once Django has checked access: Django itself (streamed), or the proxy
# (nginx: X-Accel-Redirect to MEDIA_ACCEL_PREFIX + the file's path under MEDIA_ROOT; apache:
# X-Sendfile with the file's absolute path).
MEDIA_ACCEL = os.environ.get("MEDIA_ACCEL", "off").strip().lower() or "off"
MEDIA_ACCEL_PREFIX = os.environ.get("MEDIA_ACCEL_PREFIX", "/protected-media/")
# Live sockets: messages a page may send per minute (a token bucket); beyond it they are
# answered with an error, and a socket that keeps going is closed.
WS_MESSAGES_PER_MINUTE = envint("WS_MESSAGES_PER_MINUTE", 30)
# Who may create projects ("all" signed-in users, or "staff"), and quotas (0 = unlimited).
PROJECT_CREATORS = os.environ.get("PROJECT_CREATORS", "all").strip().lower() or "all"
MAX_PROJECTS_PER_USER = envint("MAX_PROJECTS_PER_USER", 50)
MAX_IMAGES_PER_PROJECT = envint("MAX_IMAGES_PER_PROJECT", 250_000)
# Projects one trainer process holds at once (0 = no limit); beyond it the least recently
# labeled project is handed back so that a waiting, more active one gets the trainer.
TRAINER_MAX_PROJECTS = envint("TRAINER_MAX_PROJECTS", 8)
for _name, _value, _least in (
    ("REQUEST_MAX_BYTES", REQUEST_MAX_BYTES, 64 * 1024),
    ("UPLOAD_MAX_REQUEST_BYTES", UPLOAD_MAX_REQUEST_BYTES, 64 * 1024),
    ("WS_MESSAGES_PER_MINUTE", WS_MESSAGES_PER_MINUTE, 1),
    ("MAX_PROJECTS_PER_USER", MAX_PROJECTS_PER_USER, 0),
    ("MAX_IMAGES_PER_PROJECT", MAX_IMAGES_PER_PROJECT, 0),
    ("TRAINER_MAX_PROJECTS", TRAINER_MAX_PROJECTS, 0),
):
    if _value < _least:
        raise ImproperlyConfigured(f"{_name} must be at least {_least}, got {_value}.")
if MEDIA_ACCEL not in {"off", "nginx", "apache"}:
    raise ImproperlyConfigured(f"MEDIA_ACCEL must be off, nginx or apache, got {MEDIA_ACCEL!r}.")
if not (MEDIA_ACCEL_PREFIX.startswith("/") and MEDIA_ACCEL_PREFIX.endswith("/")):
    raise ImproperlyConfigured(f"MEDIA_ACCEL_PREFIX must start and end with '/', got {MEDIA_ACCEL_PREFIX!r}.")
if PROJECT_CREATORS not in {"all", "staff"}:
    raise ImproperlyConfigured(f"PROJECT_CREATORS must be all or staff, got {PROJECT_CREATORS!r}.")

LEASE_SECONDS = envint("LEASE_SECONDS", 300)
# Bulk labeling (docs/labeling.md): the grid's images (a page's `size`: 12-48); the most items per bulk answer.
BULK_GRID_SIZE, BULK_GRID_MIN, BULK_GRID_MAX, BULK_MAX_ITEMS = envint("BULK_GRID_SIZE", 40), 12, 48, envint("BULK_MAX_ITEMS", 500)
if not (BULK_GRID_MIN <= BULK_GRID_SIZE <= BULK_GRID_MAX and BULK_MAX_ITEMS >= 1):
    raise ImproperlyConfigured(f"BULK_GRID_SIZE must be 12-48 and BULK_MAX_ITEMS at least 1, got {BULK_GRID_SIZE}, {BULK_MAX_ITEMS}.")
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
# A self-supervised pool up to this size (decoded pixels) is trained from memory; a larger one
# is read batch by batch from its pixel store on disk (modelloop/pixels.py).
TRAINER_POOL_MEMORY_MB = envint("TRAINER_POOL_MEMORY_MB", 1024)
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
SERVE_WORKERS = envint("SERVE_WORKERS", 1)  # `manage.py serve`'s uvicorn worker processes (>1 needs REDIS_URL)
SERVE_CHILD_NICE = envint("SERVE_CHILD_NICE", 10)  # niceness added to serve's trainer and jobs children
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
    ("TRAINER_POOL_MEMORY_MB", TRAINER_POOL_MEMORY_MB, 0),
    ("EMBED_BATCH_SIZE", EMBED_BATCH_SIZE, 1),
    ("EMBED_WORKERS", EMBED_WORKERS, -1),
    ("ZERO_SHOT_FADE_LABELS", ZERO_SHOT_FADE_LABELS, 0),
    ("CHECKPOINT_UPLOAD_MAX_MB", CHECKPOINT_UPLOAD_MAX_MB, 1),
    ("SUSPECT_MIN_CONFIDENCE", SUSPECT_MIN_CONFIDENCE, 0),
    ("SERVE_WORKERS", SERVE_WORKERS, 1),
    ("SERVE_CHILD_NICE", SERVE_CHILD_NICE, 0),
):
    if _value < _least:
        raise ImproperlyConfigured(f"{_name} must be at least {_least}, got {_value}.")
if SUSPECT_MIN_CONFIDENCE > 1:
    raise ImproperlyConfigured(f"SUSPECT_MIN_CONFIDENCE must be at most 1, got {SUSPECT_MIN_CONFIDENCE}.")
if SERVE_TRAINER not in {"process", "thread", "none"}:
    raise ImproperlyConfigured(f"SERVE_TRAINER must be process, thread or none, got {SERVE_TRAINER!r}.")

# Background jobs (docs/configuration.md, "Background jobs"): large imports, export files and
# backups run in a task worker (`manage.py jobs_worker`; `serve` starts one as a child unless
# SERVE_WORKER=none). The queue is a table (django-tasks' database backend), so the embedded
# default needs no other service.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
IMPORT_JOB_MIN_BYTES = envint("IMPORT_JOB_MIN_BYTES", 64 * 1024 * 1024)  # uploads this big import in a job
JOB_MAX_ATTEMPTS = envint("JOB_MAX_ATTEMPTS", 3)  # runs of a job that fails unexpectedly, the first included
JOB_RETRY_DELAY_S = envint("JOB_RETRY_DELAY_S", 30)  # before the 2nd attempt; doubled for each later one
JOB_HEARTBEAT_S = envint("JOB_HEARTBEAT_S", 10)  # a running job's heartbeat...
JOB_STALE_S = envint("JOB_STALE_S", 120)  # ...older than this: its worker died; the job is retried
BACKUP_DIR = Path(os.environ.get("BACKUP_DIR") or DATA_DIR / "backups").resolve()  # backups made by jobs
SERVE_WORKER = os.environ.get("SERVE_WORKER", "process")
for _name, _value, _least in (("IMPORT_JOB_MIN_BYTES", IMPORT_JOB_MIN_BYTES, 0), ("JOB_MAX_ATTEMPTS", JOB_MAX_ATTEMPTS, 1),
                              ("JOB_RETRY_DELAY_S", JOB_RETRY_DELAY_S, 0), ("JOB_HEARTBEAT_S", JOB_HEARTBEAT_S, 1)):
    if _value < _least:
        raise ImproperlyConfigured(f"{_name} must be at least {_least}, got {_value}.")
if JOB_STALE_S < 3 * JOB_HEARTBEAT_S:
    raise ImproperlyConfigured(f"JOB_STALE_S must be at least 3 x JOB_HEARTBEAT_S ({3 * JOB_HEARTBEAT_S}), got {JOB_STALE_S}.")
if SERVE_WORKER not in {"process", "none"}:
    raise ImproperlyConfigured(f"SERVE_WORKER must be process or none, got {SERVE_WORKER!r}.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "faiss.loader": {"level": "WARNING"}},
}

from annotator.storage import storage_settings  # noqa: E402 - images: local or an S3 bucket (configuration.md)

globals().update(_STORAGE := storage_settings(os.environ))  # STORAGE_BACKEND, AWS_*, MEDIA_DELIVERY, CACHE_DIR...

# Deployment: HTTPS, CSP, static files, health
# (docs/deploy.md shows them together with a reverse proxy; docs/configuration.md lists each.)
#
# DEPLOY_HTTPS=1 when a TLS proxy fronts the app: HSTS, redirect to https, Secure cookies, and
# the proxy's X-Forwarded-Proto trusted to say the request came over https (the proxy must
# set that header itself, overwriting the client's). SECURE_COOKIES, the older switch, still
# marks the cookies Secure on its own.
DEPLOY_HTTPS = envbool("DEPLOY_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = DEPLOY_HTTPS or envbool("SECURE_COOKIES", False)
if DEPLOY_HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
    # Probes (Docker's HEALTHCHECK, a load balancer) call these over plain http inside.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# Content-Security-Policy (django-csp 4.x): nothing inline, scripts and styles from /static/
# only. Pages set widths through CSSOM from static/js, and htmx is told not to inject its
# indicator <style> (templates/base.html); connect-src 'self' covers the same-origin websocket.
from csp.constants import NONE, SELF  # noqa: E402

INSTALLED_APPS += ["csp"]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"] + _STORAGE["MEDIA_IMG_ORIGINS"],  # presigned URLs: the bucket
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Static files: WhiteNoise serves /static/ from the app process (SERVE_STATIC=0 leaves it to
# the proxy). With a collected STATIC_ROOT (the Docker image runs collectstatic) the files
# get hashed, compressed names and a year's caching; without one (a checkout, `make demo`,
# the tests) they are served from static/ as they are.
SERVE_STATIC = envbool("SERVE_STATIC", True)
STATIC_MANIFEST = envbool("STATIC_MANIFEST", (STATIC_ROOT / "staticfiles.json").exists())
STORAGES = {
    "default": _STORAGE["MEDIA_STORAGE"],
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage" if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
if not STATIC_MANIFEST:  # served from the finders: an uncollected STATIC_ROOT is expected, not news
    import warnings  # noqa: E402

    warnings.filterwarnings("ignore", message="No directory at", module="whitenoise.base")
_static_at = MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1
MIDDLEWARE[_static_at:_static_at] = ["whitenoise.middleware.WhiteNoiseMiddleware"] if SERVE_STATIC else []
# before axes, whose middleware must stay last (its lockout answers get the policy too)
MIDDLEWARE.insert(MIDDLEWARE.index("axes.middleware.AxesMiddleware"), "csp.middleware.CSPMiddleware")

# Health: GET /healthz (the process answers) and GET /readyz (database, channel layer,
# storage, trainer heartbeat). A trainer counts as alive when a project's heartbeat is at
# most READY_TRAINER_MAX_AGE_S old; READY_REQUIRE_TRAINER=0 leaves the trainer out.
READY_REQUIRE_TRAINER = envbool("READY_REQUIRE_TRAINER", True)
READY_TRAINER_MAX_AGE_S = envint("READY_TRAINER_MAX_AGE_S", 3 * TRAINER_LEASE_SECONDS)
if READY_TRAINER_MAX_AGE_S < 1:
    raise ImproperlyConfigured(f"READY_TRAINER_MAX_AGE_S must be at least 1, got {READY_TRAINER_MAX_AGE_S}.")
