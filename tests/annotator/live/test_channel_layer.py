"""The channel layer configured by the settings delivers group messages (Redis in production)."""
import os

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def _round_trip():
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("project-test", channel)
    async_to_sync(layer.group_send)("project-test", {"type": "status", "phase": "training"})
    message = async_to_sync(layer.receive)(channel)
    async_to_sync(layer.group_discard)("project-test", channel)
    return layer, message


def test_the_default_layer_delivers_group_messages(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    _layer, message = _round_trip()
    assert message == {"type": "status", "phase": "training"}


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set (CI sets it)")
def test_the_redis_layer_delivers_group_messages(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [os.environ["REDIS_URL"]]}}
    }
    layer, message = _round_trip()
    assert type(layer).__name__ == "RedisChannelLayer"
    assert message == {"type": "status", "phase": "training"}
