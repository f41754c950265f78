"""Reading settings from environment variables: tiny typed helpers, with the variable's name
in the error (annotator/settings.py uses them; kept apart so that file stays one screenful per
concern)."""
import os

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
