"""The token endpoint's throttle keeps its counters in the cache (Redis when REDIS_URL is
set). While Redis is down the throttle fails open instead of answering 500; the lockout
(database rows) still stops password guessing. Against a real Redis stopped for 30 s:
tests/faults/test_redis_outage.py."""
import socket

import pytest
from rest_framework.test import APIClient

SECRET = "a-long-test-password-42"


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture
def redis_down(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0"}}


def test_signing_in_works_while_the_cache_is_unreachable(alice, redis_down):
    alice.set_password(SECRET)
    alice.save()
    r = APIClient().post("/api/auth/token/", {"username": "alice", "password": SECRET}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["token"]


def test_wrong_passwords_are_still_locked_out_while_the_cache_is_unreachable(alice, redis_down, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = APIClient()
    codes = [client.post("/api/auth/token/", {"username": "alice", "password": f"wrong-{i}"}, format="json").status_code
             for i in range(5)]
    assert codes[:2] == [400, 400] and codes[-1] == 429, codes
