"""Liveness and readiness for probes: GET /healthz (the process answers; touches nothing) and
GET /readyz (each part the app needs, checked and reported in JSON; 503 names the failing
ones). Open to anonymous callers, so the answers say ok or not and never why in detail: the
reason goes to the log."""
import asyncio
import logging
import tempfile
import time
import uuid
from pathlib import Path

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from annotator.models import Project, TrainerState
from annotator.storage import is_local, media_storage

log = logging.getLogger(__name__)
CHANNEL_TIMEOUT_S = 2.0


class NotReady(Exception):
    """A part is not ready; the message is safe to show anyone."""


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def check_channel_layer():
    """A message sent to a fresh channel of this process comes back (Redis, or in memory)."""
    layer = get_channel_layer()
    if layer is None:
        raise NotReady("no channel layer is configured")

    async def round_trip():
        channel = await layer.new_channel("readyz.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "readyz.ping", "token": token})
        message = await asyncio.wait_for(layer.receive(channel), CHANNEL_TIMEOUT_S)
        if message.get("token") != token:
            raise NotReady("the channel layer returned another message")

    async_to_sync(round_trip)()
    return {}


def check_storage():
    """A file can be written (and removed) where imports store images; with a bucket
    (STORAGE_BACKEND=s3), the bucket answers to the server's credentials."""
    storage = media_storage()
    if not is_local(storage):
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
        return {"bucket": storage.bucket_name}
    root = Path(settings.MEDIA_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root, prefix=".readyz-") as probe:
        probe.write(b"ok")
        probe.flush()
    return {}


def check_trainer():
    """The newest trainer heartbeat is recent, when some project has images to train on."""
    if not settings.READY_REQUIRE_TRAINER:
        return {"required": False}
    if not Project.objects.filter(items__isnull=False).exists():
        return {"detail": "no project to train"}
    newest = TrainerState.objects.exclude(heartbeat_at=None).order_by("-heartbeat_at").values_list(
        "heartbeat_at", flat=True).first()
    if newest is None:
        raise NotReady("no trainer has sent a heartbeat")
    age = (timezone.now() - newest).total_seconds()
    if age > settings.READY_TRAINER_MAX_AGE_S:
        raise NotReady(f"the newest trainer heartbeat is {age:.0f} s old")
    return {"heartbeat_age_s": round(age, 1)}


CHECKS = {"database": check_database, "channel_layer": check_channel_layer, "storage": check_storage,
          "trainer": check_trainer}


def readiness():
    """{part: {"ok": bool, ...}} for every check, and whether all passed. A failed database
    fails the trainer check too (it reads the database), and both say so."""
    parts = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            parts[name] = {"ok": True, **check()}
        except NotReady as exc:
            parts[name] = {"ok": False, "error": str(exc)}
            log.warning("Readiness: %s is not ready: %s", name, exc)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the details go to the log only
            parts[name] = {"ok": False, "error": f"{name.replace('_', ' ')} check failed"}
            # one line per probe (a load balancer asks every few seconds); the traceback at debug
            log.warning("Readiness: the %s check failed: %s", name, " ".join(str(exc).split())[:300] or type(exc).__name__)
            log.debug("Readiness: the %s check failed", name, exc_info=True)
        parts[name]["ms"] = round(1000 * (time.monotonic() - started), 1)
    return parts, all(part["ok"] for part in parts.values())


@login_not_required
@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_GET
def readyz(request):
    parts, ready = readiness()
    failing = [name for name, part in parts.items() if not part["ok"]]
    body = {"status": "ok" if ready else "fail", "failing": failing, "checks": parts}
    return JsonResponse(body, status=200 if ready else 503)
