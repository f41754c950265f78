"""The project websocket while the channel layer (Redis) is down: closed with 1012 ("service
restart", the page reconnects with backoff) and one log line, instead of a dropped connection
without a close frame or a 500 handshake and a traceback. Against a real Redis stopped for
30 s: tests/faults/test_redis_outage.py."""
import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.annotator.live.test_consumers import Socket, _headers

pytestmark = pytest.mark.django_db(transaction=True)
CLOSE_LAYER_DOWN = 1012  # "service restart": the page reconnects


class BrokenLayer(InMemoryChannelLayer):
    """An in-memory layer that fails like channels-redis with Redis gone: on joining a group
    when `refuse_join`, and while waiting for messages once `down` is set."""

    refuse_join = False
    down = False

    async def group_add(self, group, channel):
        if BrokenLayer.refuse_join:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return await super().group_add(group, channel)

    async def receive(self, channel):
        while not BrokenLayer.down:
            await asyncio.sleep(0.01)
        raise RedisConnectionError("Connection closed by server.")


@pytest.fixture(autouse=True)
def broken_layer(settings):
    BrokenLayer.refuse_join, BrokenLayer.down = False, False
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.BrokenLayer"}}
    yield BrokenLayer


def test_a_socket_opened_while_the_layer_is_down_is_refused_cleanly(project, bob, broken_layer):
    broken_layer.refuse_join = True
    headers = _headers(bob)

    async def scenario():
        socket = Socket(project.pk, headers)
        await socket.send_input({"type": "websocket.connect"})
        return await socket.receive_output(2)

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": CLOSE_LAYER_DOWN}


def test_an_open_socket_is_closed_with_1012_when_the_layer_goes_down(project, bob, broken_layer):
    headers = _headers(bob)

    async def scenario():
        socket = Socket(project.pk, headers)
        assert await socket.connect()
        assert (await socket.receive_json())["type"] == "status"
        broken_layer.down = True
        return await socket.receive_output(2)

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": CLOSE_LAYER_DOWN}
