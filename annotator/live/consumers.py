"""Live updates for a project's pages: trainer status and queue changes over one websocket.

The group messages come from `annotator.events` (STATUS -> `trainer_status`, QUEUE ->
`queue_updated`, INSTRUCTIONS -> `instructions_changed`, MEMBERS -> `members_changed`); all
but the last are forwarded to the browser as ``{"type": "status", ...}``, ``{"type": "queue",
...}`` or ``{"type": "instructions", ...}``.

Membership is checked when the socket opens and again before every message it is sent: a
member who was removed (or whose account was deactivated) gets nothing more, and the socket is
closed with CLOSE_NOT_MEMBER. Removing a member publishes MEMBERS, so that socket closes at once
rather than at the next event.

What a page sends (pings, status requests) is rate-limited per socket: WS_MESSAGES_PER_MINUTE,
as a token bucket that holds a minute's worth. A message beyond it is answered with
``{"type": "error", "message": ...}``; a socket that goes on regardless is closed with
CLOSE_TOO_MANY.
"""
import json
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http import Http404

from annotator import events
from annotator.access import project_for
from annotator.modelloop.status import trainer_status
from annotator.models import Membership

try:  # what the Redis channel layer raises while Redis is down (redis-py comes with channels-redis)
    from redis.exceptions import RedisError as _LayerError
except ImportError:  # pragma: no cover - no Redis client installed, so no Redis layer either
    _LayerError = OSError
LAYER_ERRORS = (_LayerError, OSError)

log = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's): the page stops reconnecting on the first.
CLOSE_NOT_MEMBER = 4403
CLOSE_TOO_MANY = 4429
# 1012 "service restart": the channel layer (Redis) went away; the page reconnects with backoff.
CLOSE_LAYER_DOWN = 1012
# Refused messages in a row after which the socket is closed.
MAX_REFUSED = 10
# The page's messages are a few bytes; anything longer is not read.
MAX_MESSAGE_CHARS = 4096
NOT_A_MEMBER = "You are no longer a member of this project."
TOO_MANY = "Too many messages on this socket: at most {n} a minute. Slow down."


@database_sync_to_async
def _project_for_member(user, project_id):
    """The project when `user` is a member of any role, else None (the socket is refused)."""
    try:
        return project_for(user, project_id)
    except Http404:
        return None


@database_sync_to_async
def _still_member(user_id, project_id):
    return Membership.objects.filter(project_id=project_id, user_id=user_id, user__is_active=True).exists()


class TokenBucket:
    """`capacity` messages at once, refilled at `per_minute`. Ten lines, so no library: the
    async limiters around (aiolimiter) make the caller wait, and a socket must be refused."""

    def __init__(self, per_minute, clock=time.monotonic):
        self.capacity = self.tokens = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.stamp = clock()

    def take(self):
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ProjectConsumer(AsyncJsonWebsocketConsumer):
    project = None
    closing = False

    async def __call__(self, scope, receive, send):
        """While the channel layer (Redis) is down, joining the group or waiting on it fails:
        the socket is closed with CLOSE_LAYER_DOWN (a handshake not yet accepted is refused
        with 403) and one line goes to the log, instead of the ASGI server dropping the
        connection without a close frame (or answering the handshake with 500) and logging a
        traceback. Pages reconnect with backoff (static/js/live.js) and poll meanwhile."""
        try:
            await super().__call__(scope, receive, send)
        except LAYER_ERRORS as exc:
            log.warning("Live socket %s closed: the channel layer is unavailable (%s: %s)", scope.get("path"),
                        type(exc).__name__, exc)
            try:
                await send({"type": "websocket.close", "code": CLOSE_LAYER_DOWN})
            except Exception:  # noqa: BLE001 - the connection may be gone already; nothing more to tell
                pass

    async def connect(self):
        pk = self.scope["url_route"]["kwargs"]["pk"]
        self.group = events.group_name(pk)
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            self.project = await _project_for_member(user, pk)
        if self.project is None:
            await self.close()  # before accept: the browser sees a refused handshake
            return
        self.user_id = user.pk
        self.bucket = TokenBucket(settings.WS_MESSAGES_PER_MINUTE)
        self.refused = 0
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_status()  # a reconnecting page resynchronises at once

    async def disconnect(self, code):
        if self.project is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def still_member(self):
        """Before anything about the project goes out: a removed member's socket is closed."""
        if self.closing:
            return False
        if await _still_member(self.user_id, self.project.pk):
            return True
        await self.shut(CLOSE_NOT_MEMBER, NOT_A_MEMBER)
        return False

    async def shut(self, code, reason):
        self.closing = True
        await self.channel_layer.group_discard(self.group, self.channel_name)
        await self.close(code=code, reason=reason)

    async def send_status(self):
        status = await database_sync_to_async(trainer_status)(self.project)
        await self.send_json({"type": "status", "status": status})

    async def trainer_status(self, event):
        if await self.still_member():
            await self.send_json({"type": "status", "status": event["status"]})

    async def queue_updated(self, event):
        if await self.still_member():
            await self.send_json({"type": "queue", "version": event["version"]})

    async def instructions_changed(self, event):
        if await self.still_member():
            await self.send_json({"type": "instructions", "version": event["version"]})

    async def members_changed(self, event):
        await self.still_member()

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Every frame counts against the rate limit. Ignore what the page never sends (binary
        frames, bad JSON, non-objects) instead of letting the base class raise and drop the
        socket."""
        if self.closing or not await self.allowed():
            return
        if text_data is None or len(text_data) > MAX_MESSAGE_CHARS:
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            return
        if isinstance(content, dict):
            await self.receive_json(content)

    async def allowed(self):
        """Take a token; without one, answer with an error (and close after MAX_REFUSED)."""
        if self.bucket.take():
            self.refused = 0
            return True
        self.refused += 1
        if self.refused >= MAX_REFUSED:
            await self.shut(CLOSE_TOO_MANY, "Too many messages.")
        else:
            await self.send_json({"type": "error", "message": TOO_MANY.format(n=settings.WS_MESSAGES_PER_MINUTE)})
        return False

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})
        elif content.get("type") == "status" and await self.still_member():
            await self.send_status()
