"""Password guessing is locked out per (username, client address) on the sign-in page, the
admin's and the token endpoint; a rotating X-Forwarded-For from an untrusted peer does not
make a new client; a trusted proxy's header does."""
import pytest
from axes.models import AccessAttempt
from django.urls import reverse
from rest_framework.test import APIClient

from tests.conftest import PASSWORD

GUESSES = 25


@pytest.fixture(autouse=True)
def _generous_throttle(settings):
    """The DRF throttle out of the way, so that these tests see the lockout."""
    from annotator.api.auth import TokenAttemptThrottle

    before = TokenAttemptThrottle.THROTTLE_RATES
    TokenAttemptThrottle.THROTTLE_RATES = {"auth-token": "1000/min"}
    yield
    TokenAttemptThrottle.THROTTLE_RATES = before


def _rotating(i):
    return {"HTTP_X_FORWARDED_FOR": f"203.0.113.{i % 250 + 1}"}


def test_the_token_endpoint_locks_out_a_rotating_header(alice):
    client = APIClient()
    codes = [
        client.post("/api/auth/token/", {"username": "alice", "password": f"guess-{i}"}, format="json",
                    **_rotating(i)).status_code
        for i in range(GUESSES)
    ]
    assert codes[:9] == [400] * 9
    assert codes[9:] == [429] * (GUESSES - 9)
    r = client.post("/api/auth/token/", {"username": "alice", "password": PASSWORD}, format="json", **_rotating(99))
    assert r.status_code == 429
    assert "Too many failed sign-ins" in r.json()["detail"]
    assert int(r["Retry-After"]) == 15 * 60
    assert AccessAttempt.objects.get().ip_address == "127.0.0.1"


def test_the_login_page_locks_out_with_a_message_on_the_form(client, alice):
    codes = [
        client.post(reverse("login"), {"username": "alice", "password": f"guess-{i}"}, **_rotating(i)).status_code
        for i in range(GUESSES)
    ]
    assert codes[:9] == [200] * 9 and codes[9:] == [429] * (GUESSES - 9)
    r = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert r.status_code == 429
    page = r.content.decode()
    assert "Too many failed sign-ins" in page and 'role="alert"' in page and 'name="password"' in page
    assert "_auth_user_id" not in client.session


def test_the_admin_login_is_locked_out_too(client, alice):
    alice.is_staff = True
    alice.save()
    url = reverse("admin:login")
    codes = [client.post(url, {"username": "alice", "password": f"guess-{i}"}, **_rotating(i)).status_code
             for i in range(GUESSES)]
    assert codes[9:] == [429] * (GUESSES - 9)
    r = client.post(url, {"username": "alice", "password": PASSWORD, "next": "/admin/"})
    assert r.status_code == 429 and "_auth_user_id" not in client.session


def test_the_page_and_the_api_share_one_count(client, alice):
    for i in range(5):
        client.post(reverse("login"), {"username": "alice", "password": f"guess-{i}"})
    codes = [APIClient().post("/api/auth/token/", {"username": "alice", "password": f"g{i}"}).status_code
             for i in range(5)]
    assert codes == [400] * 4 + [429]


def test_another_account_from_the_same_address_is_not_locked(client, alice, bob):
    for i in range(GUESSES):
        client.post(reverse("login"), {"username": "alice", "password": f"guess-{i}"})
    r = client.post(reverse("login"), {"username": "bob", "password": PASSWORD})
    assert r.status_code == 302


def test_a_trusted_proxy_header_names_the_client(settings, alice):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    client = APIClient()
    for i in range(10):
        client.post("/api/auth/token/", {"username": "alice", "password": f"guess-{i}"},
                    HTTP_X_FORWARDED_FOR="203.0.113.5")
    locked = client.post("/api/auth/token/", {"username": "alice", "password": PASSWORD},
                         HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert locked.status_code == 429
    elsewhere = client.post("/api/auth/token/", {"username": "alice", "password": PASSWORD},
                            HTTP_X_FORWARDED_FOR="198.51.100.20, 127.0.0.1")
    assert elsewhere.status_code == 200
    assert AccessAttempt.objects.get().ip_address == "203.0.113.5"


def test_the_lockout_ends_after_the_cool_off(client, alice):
    from datetime import timedelta

    from django.utils import timezone

    for i in range(10):
        client.post(reverse("login"), {"username": "alice", "password": f"guess-{i}"})
    assert client.post(reverse("login"), {"username": "alice", "password": PASSWORD}).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert client.post(reverse("login"), {"username": "alice", "password": PASSWORD}).status_code == 302


def test_the_token_throttle_counts_the_peer_not_a_rotating_header(alice):
    from annotator.api.auth import TokenAttemptThrottle

    TokenAttemptThrottle.THROTTLE_RATES = {"auth-token": "3/min"}
    codes = [
        APIClient().post("/api/auth/token/", {"username": f"nobody-{i}", "password": "x"}, **_rotating(i)).status_code
        for i in range(4)
    ]
    assert codes == [400, 400, 400, 429]


def test_wrong_passwords_are_not_stored(client, alice):
    client.post(reverse("login"), {"username": "alice", "password": "almost-the-right-one"})
    attempt = AccessAttempt.objects.get()
    assert "almost-the-right-one" not in attempt.post_data + attempt.get_data
