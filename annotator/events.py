"""Live events: the message types sent to a project's websocket group, in one place.

The trainer (or anything else that changes what a browser shows) calls `publish`; the
consumer (`annotator.live.consumers`) forwards each message to the sockets of the project's
members as JSON: ``{"type": "status", "status": {...}}``, ``{"type": "queue", "version": n}`` or
``{"type": "instructions", "version": n}``.

Where the events go is set once per process with `set_publisher`: by default straight to
the channel layer (Redis in production); `manage.py serve` relays a child trainer's
events into its own in-memory layer.
"""
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

STATUS = "trainer.status"  # handler `trainer_status` on the consumer
QUEUE = "queue.updated"  # handler `queue_updated`
MEMBERS = "members.changed"  # handler `members_changed`: each socket re-checks its membership
INSTRUCTIONS = "instructions.changed"  # handler `instructions_changed`


def group_name(project_id):
    return f"project-{int(project_id)}"


def status_event(status):
    return {"type": STATUS, "status": status}


def queue_event(version_number):
    return {"type": QUEUE, "version": version_number}


def members_event():
    return {"type": MEMBERS}


def instructions_event(version):
    return {"type": INSTRUCTIONS, "version": version}


def _send_to_layer(project_id, message):
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group_name(project_id), message)


_publisher = _send_to_layer


def set_publisher(fn):
    """Route events through `fn(project_id, message)` (None restores the channel layer)."""
    global _publisher
    _publisher = fn or _send_to_layer


def publish(project_id, message):
    """Best effort: a lost live event only delays a browser until its next HTTP call."""
    try:
        _publisher(project_id, message)
    except Exception:  # noqa: BLE001 - never let a dead socket layer stop the trainer
        log.warning("Could not publish %s for project %s", message.get("type"), project_id, exc_info=True)


def loop_publisher(loop, layer=None):
    """A publisher for code that runs outside the server's event loop (a trainer thread, a
    relay of a child process's events): the in-memory layer's queues belong to `loop`, so
    the send is scheduled there instead of on a new loop in the calling thread."""
    import asyncio

    def publish_on_loop(project_id, message):
        target = layer or get_channel_layer()
        if target is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(target.group_send(group_name(project_id), message), loop)

    return publish_on_loop
