"""The project websocket: only members join, and they get the trainer status and queue events.

Sockets go through the real `annotator.asgi.application`, so the Origin check and the session
cookie authentication are exercised too. Each test runs its async steps in one event loop
with `async_to_sync` (the in-memory channel layer's queues belong to that loop).
"""
import json
import os

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from asgiref.testing import ApplicationCommunicator
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.test import Client

from annotator import events
from annotator.asgi import application
from annotator.modelloop.status import trainer_status
from annotator.projects.changes import create_project

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = b"http://localhost"  # localhost is in the default ALLOWED_HOSTS


@pytest.fixture(autouse=True)
def _fresh_layer(settings):
    """A new in-memory layer per test (changing the setting drops the cached one) and the
    default publisher, whatever an earlier test set."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    events.set_publisher(None)
    yield
    events.set_publisher(None)


def _headers(user=None, origin=ORIGIN):
    headers = [(b"host", b"localhost")]
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        client = Client()
        client.force_login(user)
        session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={session}".encode()))
    return headers


class Socket(ApplicationCommunicator):
    """A browser's websocket to the ASGI app: channels' WebsocketCommunicator in a few lines,
    because importing `channels.testing` needs daphne, which the project does not install."""

    def __init__(self, project_id, headers):
        scope = {"type": "websocket", "path": f"/ws/projects/{project_id}/", "query_string": b"",
                 "headers": headers, "subprotocols": []}
        super().__init__(application, scope)

    async def connect(self):
        """True when the handshake is accepted, False when the app closes it."""
        await self.send_input({"type": "websocket.connect"})
        return (await self.receive_output(1))["type"] == "websocket.accept"

    async def send_text(self, text):
        await self.send_input({"type": "websocket.receive", "text": text})

    async def send_json(self, content):
        await self.send_text(json.dumps(content))

    async def receive_json(self):
        message = await self.receive_output(1)
        assert message["type"] == "websocket.send", message
        return json.loads(message["text"])

    async def disconnect(self):
        await self.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.wait(1)


def _connects(project_id, headers):
    async def attempt():
        socket = Socket(project_id, headers)
        connected = await socket.connect()
        await socket.disconnect()  # after a refusal too: the server reports the closed socket
        return connected

    return async_to_sync(attempt)()


async def _join(project_id, headers):
    """Connect and read the initial status message."""
    socket = Socket(project_id, headers)
    assert await socket.connect()
    first = await socket.receive_json()
    assert first["type"] == "status"
    return socket, first["status"]


def test_it_rejects_anonymous(project):
    assert _connects(project.pk, _headers()) is False


def test_it_rejects_outsider(project, charlie):
    assert _connects(project.pk, _headers(charlie)) is False


def test_it_rejects_a_missing_project(project, alice):
    assert _connects(project.pk + 1000, _headers(alice)) is False


@pytest.mark.parametrize("origin", [b"http://evil.example.com", None])
def test_it_rejects_a_foreign_or_missing_origin(project, alice, origin):
    assert _connects(project.pk, _headers(alice, origin=origin)) is False


@pytest.mark.parametrize("persona", ["alice", "bob", "dave"])
def test_it_accepts_members_of_every_role(project, persona, request):
    assert _connects(project.pk, _headers(request.getfixturevalue(persona))) is True


def test_it_sends_the_current_status_on_connect(project, bob):
    expected, headers = trainer_status(project), _headers(bob)

    async def scenario():
        socket, status = await _join(project.pk, headers)
        await socket.disconnect()
        return status

    status = async_to_sync(scenario)()
    assert status["phase"] == expected["phase"] == "waiting"
    assert status.keys() == expected.keys()


def _receives_published_events(project, user):
    """A member gets status and queue group messages, sent straight to the layer and through
    the sync `events.publish` (as the trainer calls it, from a worker thread)."""
    layer, headers = get_channel_layer(), _headers(user)

    async def scenario():
        socket, _ = await _join(project.pk, headers)
        await layer.group_send(events.group_name(project.pk), events.status_event({"phase": "training"}))
        status = await socket.receive_json()
        await sync_to_async(events.publish)(project.pk, events.queue_event(3))
        queue = await socket.receive_json()
        await socket.disconnect()
        return status, queue

    return async_to_sync(scenario)()


@pytest.mark.parametrize("persona", ["alice", "bob", "dave"])
def test_members_receive_status_and_queue_events(project, persona, request):
    status, queue = _receives_published_events(project, request.getfixturevalue(persona))
    assert status == {"type": "status", "status": {"phase": "training"}}
    assert queue == {"type": "queue", "version": 3}


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set (CI sets it)")
def test_members_receive_events_over_redis(project, bob, settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [os.environ["REDIS_URL"]]}}
    }
    status, queue = _receives_published_events(project, bob)
    assert type(get_channel_layer()).__name__ == "RedisChannelLayer"
    assert status == {"type": "status", "status": {"phase": "training"}}
    assert queue == {"type": "queue", "version": 3}


def test_it_keeps_projects_apart(project, alice, bob):
    other = create_project(alice, name="Letters", classes=["a", "b"], audit_fraction=0.0)
    bob_headers, alice_headers = _headers(bob), _headers(alice)

    async def scenario():
        on_project, _ = await _join(project.pk, bob_headers)
        on_other, _ = await _join(other.pk, alice_headers)
        await sync_to_async(events.publish)(other.pk, events.queue_event(7))
        received = await on_other.receive_json()
        quiet = await on_project.receive_nothing(timeout=0.2)
        await on_project.disconnect()
        await on_other.disconnect()
        return received, quiet

    received, quiet = async_to_sync(scenario)()
    assert received == {"type": "queue", "version": 7}
    assert quiet


def test_it_answers_ping_and_status_requests(project, bob):
    headers = _headers(bob)

    async def scenario():
        socket, _ = await _join(project.pk, headers)
        await socket.send_json({"type": "ping"})
        pong = await socket.receive_json()
        await socket.send_json({"type": "status"})
        status = await socket.receive_json()
        await socket.disconnect()
        return pong, status

    pong, status = async_to_sync(scenario)()
    assert pong == {"type": "pong"}
    assert status["type"] == "status" and status["status"]["phase"] == "waiting"


def test_it_ignores_bad_input_and_stays_open(project, bob):
    headers = _headers(bob)

    async def scenario():
        socket, _ = await _join(project.pk, headers)
        for junk in ["not json {", "[1, 2]", '"ping"', '{"type": "reboot"}', "{}"]:
            await socket.send_text(junk)
        await socket.send_input({"type": "websocket.receive", "bytes": b"\x00\x01"})
        quiet = await socket.receive_nothing(timeout=0.2)
        await socket.send_json({"type": "ping"})  # still open and answering
        pong = await socket.receive_json()
        await socket.disconnect()
        return quiet, pong

    quiet, pong = async_to_sync(scenario)()
    assert quiet
    assert pong == {"type": "pong"}


def test_it_leaves_the_group_on_disconnect(project, bob):
    layer, headers, group = get_channel_layer(), _headers(bob), events.group_name(project.pk)

    async def scenario():
        socket, _ = await _join(project.pk, headers)
        joined = len(layer.groups.get(group, {}))  # the in-memory layer's own bookkeeping
        await socket.disconnect()
        return joined, len(layer.groups.get(group, {}))

    assert async_to_sync(scenario)() == (1, 0)


# --- membership re-checked on every event, and the rate limit -------------------------------


async def _closed_with(socket):
    message = await socket.receive_output(1)
    assert message["type"] == "websocket.close", message
    return message["code"]


def test_a_removed_member_is_closed_at_once_and_gets_nothing(project, alice, bob):
    from annotator.live.consumers import CLOSE_NOT_MEMBER
    from annotator.projects.members import remove_member

    bob_headers, alice_headers = _headers(bob), _headers(alice)

    async def scenario():
        bobs, _ = await _join(project.pk, bob_headers)
        alices, _ = await _join(project.pk, alice_headers)
        await sync_to_async(remove_member)(project, "bob")
        code = await _closed_with(bobs)
        await alices.receive_nothing(timeout=0.1)  # the members event is not forwarded
        await sync_to_async(events.publish)(project.pk, events.status_event({"phase": "training"}))
        alice_got = await alices.receive_json()
        bob_quiet = await bobs.receive_nothing(timeout=0.2)
        await alices.disconnect()
        return code, alice_got, bob_quiet

    code, alice_got, bob_quiet = async_to_sync(scenario)()
    assert code == CLOSE_NOT_MEMBER
    assert alice_got == {"type": "status", "status": {"phase": "training"}}
    assert bob_quiet


@pytest.mark.parametrize("event", [events.status_event({"phase": "training"}), events.queue_event(4)])
def test_membership_is_checked_before_every_event(project, bob, event):
    """Removed behind the consumer's back (no members event): the next event is not sent."""
    from annotator.live.consumers import CLOSE_NOT_MEMBER
    from annotator.models import Membership

    headers = _headers(bob)

    async def scenario():
        socket, _ = await _join(project.pk, headers)
        await sync_to_async(Membership.objects.filter(project=project, user=bob).delete)()
        await get_channel_layer().group_send(events.group_name(project.pk), event)
        return await _closed_with(socket)

    assert async_to_sync(scenario)() == CLOSE_NOT_MEMBER


def test_a_deactivated_user_gets_no_more_events(project, bob):
    from annotator.live.consumers import CLOSE_NOT_MEMBER

    headers = _headers(bob)

    async def scenario():
        socket, _ = await _join(project.pk, headers)
        bob.is_active = False
        await sync_to_async(bob.save)()
        await socket.send_json({"type": "status"})
        return await _closed_with(socket)

    assert async_to_sync(scenario)() == CLOSE_NOT_MEMBER


def test_status_requests_are_rate_limited_and_abuse_closes_the_socket(project, bob, settings):
    from annotator.live.consumers import CLOSE_TOO_MANY, MAX_REFUSED

    settings.WS_MESSAGES_PER_MINUTE = 5
    headers = _headers(bob)

    async def scenario():
        socket, _ = await _join(project.pk, headers)
        answered = []
        for _ in range(5):
            await socket.send_json({"type": "status"})
            answered.append((await socket.receive_json())["type"])
        await socket.send_json({"type": "status"})
        refusal = await socket.receive_json()
        for _ in range(MAX_REFUSED - 2):
            await socket.send_json({"type": "ping"})
            assert (await socket.receive_json())["type"] == "error"
        await socket.send_json({"type": "status"})
        return answered, refusal, await _closed_with(socket)

    answered, refusal, code = async_to_sync(scenario)()
    assert answered == ["status"] * 5
    assert refusal == {"type": "error", "message": "Too many messages on this socket: at most 5 a minute. Slow down."}
    assert code == CLOSE_TOO_MANY


def test_the_bucket_refills_with_time():
    from annotator.live.consumers import TokenBucket

    now = [0.0]
    bucket = TokenBucket(60, clock=lambda: now[0])
    assert all(bucket.take() for _ in range(60))
    assert not bucket.take()
    now[0] += 1.0  # one message a second
    assert bucket.take()
    assert not bucket.take()
    now[0] += 3600
    assert sum(bucket.take() for _ in range(100)) == 60  # never more than a minute's worth
