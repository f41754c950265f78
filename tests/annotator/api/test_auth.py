"""Signing in to the API: token from username and password, then `Authorization: Token`."""
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

SECRET = "a-long-test-password-42"


def _with_password(user):
    user.set_password(SECRET)
    user.save()
    return user


def test_it_issues_a_token_that_authenticates_later_calls(project, alice):
    _with_password(alice)
    client = APIClient()
    r = client.post("/api/auth/token/", {"username": "alice", "password": SECRET}, format="json")
    assert r.status_code == 200
    token = r.json()["token"]
    assert Token.objects.get(user=alice).key == token

    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    r = client.get("/api/projects/")
    assert r.status_code == 200
    assert [p["name"] for p in r.json()["results"]] == ["Digits"]
    r = client.post(f"/api/projects/{project.pk}/next/", {}, format="json")
    assert r.status_code == 204  # a member, nothing imported yet


def test_it_returns_the_same_token_on_a_second_sign_in(alice):
    _with_password(alice)
    client = APIClient()
    first = client.post("/api/auth/token/", {"username": "alice", "password": SECRET}).json()["token"]
    second = client.post("/api/auth/token/", {"username": "alice", "password": SECRET}).json()["token"]
    assert first == second


def test_it_rejects_a_wrong_password(alice):
    _with_password(alice)
    r = APIClient().post("/api/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert r.status_code == 400
    assert "Unable to log in" in str(r.json())
    assert not Token.objects.filter(user=alice).exists()


def test_it_rejects_a_missing_password(alice):
    r = APIClient().post("/api/auth/token/", {"username": "alice"}, format="json")
    assert r.status_code == 400
    assert r.json()["password"] == ["This field is required."]


def test_it_rejects_an_unknown_token(project):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    r = client.get(f"/api/projects/{project.pk}/")
    assert r.status_code in (401, 403)
    assert r.json()["detail"] == "Invalid token."


def test_it_accepts_a_session_login(project, alice):
    _with_password(alice)
    client = APIClient()
    assert client.login(username="alice", password=SECRET)
    r = client.get(f"/api/projects/{project.pk}/")
    assert r.status_code == 200
    assert r.json()["role"] == "owner"


def test_it_rejects_anonymous(project):
    r = APIClient().get("/api/projects/")
    assert r.status_code in (401, 403)
    assert "credentials were not provided" in r.json()["detail"]


def test_anonymous_calls_get_401_with_the_token_scheme(project):
    r = APIClient().get("/api/projects/")
    assert r.status_code == 401
    assert r["WWW-Authenticate"] == "Token"


def test_token_clients_can_load_the_image_of_their_lease(project, bob, charlie, make_items):
    make_items(1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")
    lease = client.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()
    r = client.get(lease["image_url"])
    assert r.status_code == 200
    assert b"".join(r.streaming_content).startswith(b"\x89PNG")

    outsider = APIClient()
    outsider.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=charlie).key}")
    assert outsider.get(lease["image_url"]).status_code == 404
    assert APIClient().get(lease["image_url"]).status_code == 404


def test_password_guessing_is_throttled(alice, settings):
    from django.core.cache import cache

    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth-token": "3/min"}}
    from annotator.api.auth import TokenAttemptThrottle

    TokenAttemptThrottle.THROTTLE_RATES = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    try:
        codes = [
            APIClient().post("/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json").status_code
            for _ in range(4)
        ]
    finally:
        from rest_framework.settings import api_settings

        TokenAttemptThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        cache.clear()
    assert codes == [400, 400, 400, 429]
