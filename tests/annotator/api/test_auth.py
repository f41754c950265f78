"""Signing in to the API: a new token from username and password, then `Authorization: Token`;
tokens are hashed at rest, expire, are revoked by a new password or a deactivated account,
and their owner lists and revokes them."""
from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from annotator.accounts.tokens import issue_token
from annotator.models import ApiToken, token_digest

SECRET = "a-long-test-password-42"


def _with_password(user):
    user.set_password(SECRET)
    user.save()
    return user


def _token_client(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_it_issues_a_token_that_authenticates_later_calls(project, alice):
    _with_password(alice)
    client = APIClient()
    r = client.post("/api/auth/token/", {"username": "alice", "password": SECRET, "name": "laptop"}, format="json")
    assert r.status_code == 200
    body = r.json()
    token = body["token"]
    assert body["prefix"] == token[:8] and body["name"] == "laptop"

    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    r = client.get("/api/projects/")
    assert r.status_code == 200
    assert [p["name"] for p in r.json()["results"]] == ["Digits"]
    r = client.post(f"/api/projects/{project.pk}/next/", {}, format="json")
    assert r.status_code == 204  # a member, nothing imported yet


def test_the_token_is_stored_only_as_a_hash(alice):
    _with_password(alice)
    token = APIClient().post("/api/auth/token/", {"username": "alice", "password": SECRET}).json()["token"]
    row = ApiToken.objects.get(user=alice)
    assert row.key_hash == token_digest(token) != token
    stored = [str(value) for value in ApiToken.objects.values_list(flat=False).get()]
    assert not any(token in value for value in stored)


def test_each_sign_in_issues_a_new_token_and_both_work(alice):
    _with_password(alice)
    client = APIClient()
    first = client.post("/api/auth/token/", {"username": "alice", "password": SECRET}).json()["token"]
    second = client.post("/api/auth/token/", {"username": "alice", "password": SECRET}).json()["token"]
    assert first != second
    assert _token_client(first).get("/api/projects/").status_code == 200
    assert _token_client(second).get("/api/projects/").status_code == 200


def test_it_rejects_a_wrong_password(alice):
    _with_password(alice)
    r = APIClient().post("/api/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert r.status_code == 400
    assert "Unable to log in" in str(r.json())
    assert not ApiToken.objects.filter(user=alice).exists()


def test_it_rejects_a_missing_password(alice):
    r = APIClient().post("/api/auth/token/", {"username": "alice"}, format="json")
    assert r.status_code == 400
    assert r.json()["password"] == ["This field is required."]


def test_it_rejects_an_unknown_token(project):
    r = _token_client("0123456789abcdef0123456789abcdef01234567").get(f"/api/projects/{project.pk}/")
    assert r.status_code == 401
    assert r.json()["detail"] == "Invalid token."


def test_it_rejects_an_expired_token(project, alice, settings):
    token, key = issue_token(alice)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    r = _token_client(key).get(f"/api/projects/{project.pk}/")
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


def test_a_token_expires_after_the_configured_days(alice, settings):
    settings.API_TOKEN_TTL_DAYS = 7
    token, _ = issue_token(alice)
    assert abs(token.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)


def test_a_new_password_revokes_every_token(project, alice):
    _, key = issue_token(alice)
    issue_token(alice)
    alice.set_password("another-long-password-43")
    alice.save()
    assert not ApiToken.objects.filter(user=alice).exists()
    assert _token_client(key).get(f"/api/projects/{project.pk}/").status_code == 401


def test_the_password_change_page_revokes_every_token(project, alice, client):
    from tests.conftest import PASSWORD

    _, key = issue_token(alice)
    client.force_login(alice)
    r = client.post("/accounts/password_change/", {
        "old_password": PASSWORD, "new_password1": "another-long-password-43",
        "new_password2": "another-long-password-43",
    })
    assert r.status_code == 302
    assert _token_client(key).get(f"/api/projects/{project.pk}/").status_code == 401


def test_saving_other_fields_keeps_the_tokens(alice):
    _, key = issue_token(alice)
    alice.email = "alice@example.org"
    alice.save()
    alice.last_login = timezone.now()
    alice.save(update_fields=["last_login"])
    assert _token_client(key).get("/api/projects/").status_code == 200


def test_a_deactivated_account_cannot_get_or_use_tokens(project, alice):
    _with_password(alice)
    _, key = issue_token(alice)
    alice.is_active = False
    alice.save()
    assert _token_client(key).get(f"/api/projects/{project.pk}/").status_code == 401
    r = APIClient().post("/api/auth/token/", {"username": "alice", "password": SECRET})
    assert r.status_code == 400 and "Unable to log in" in str(r.json())


def test_a_token_of_an_account_deactivated_behind_the_signals_back_is_refused(project, alice):
    from django.contrib.auth import get_user_model

    _, key = issue_token(alice)
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)  # no save(): no signal
    r = _token_client(key).get(f"/api/projects/{project.pk}/")
    assert r.status_code == 401 and r.json()["detail"] == "This account is deactivated."


def test_its_owner_lists_tokens_without_their_values(alice, bob):
    first, first_key = issue_token(alice, "ci")
    second, _ = issue_token(alice, "laptop")
    issue_token(bob)
    expired, _ = issue_token(alice, "old")
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    r = _token_client(first_key).get("/api/tokens/")
    assert r.status_code == 200
    rows = r.json()
    assert [row["id"] for row in rows] == [second.pk, first.pk]
    assert rows[1]["prefix"] == first_key[:8] and rows[1]["name"] == "ci"
    assert first_key not in str(rows)
    assert set(rows[0]) == {"id", "name", "prefix", "created_at", "expires_at", "last_used_at"}


def test_its_owner_revokes_a_token(alice):
    token, key = issue_token(alice)
    _, other = issue_token(alice)
    client = _token_client(other)
    assert client.delete(f"/api/tokens/{token.pk}/").status_code == 204
    assert _token_client(key).get("/api/tokens/").status_code == 401
    assert client.delete(f"/api/tokens/{token.pk}/").status_code == 404


def test_an_outsider_cannot_revoke_or_see_someone_elses_token(alice, charlie):
    token, key = issue_token(alice)
    _, charlie_key = issue_token(charlie)
    client = _token_client(charlie_key)
    r = client.delete(f"/api/tokens/{token.pk}/")
    assert r.status_code == 404 and r.json()["detail"] == f"You have no token with id {token.pk}."
    assert [row["id"] for row in client.get("/api/tokens/").json()] != [token.pk]
    assert _token_client(key).get("/api/tokens/").status_code == 200


def test_the_token_list_needs_a_sign_in(alice):
    token, _ = issue_token(alice)
    assert APIClient().get("/api/tokens/").status_code == 401
    assert APIClient().delete(f"/api/tokens/{token.pk}/").status_code == 401
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_a_huge_token_id_is_not_found(alice):
    _, key = issue_token(alice)
    assert _token_client(key).delete(f"/api/tokens/{10**20}/").status_code == 404


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
    client = _token_client(issue_token(bob)[1])
    lease = client.post(f"/api/projects/{project.pk}/next/", {}, format="json").json()
    r = client.get(lease["image_url"])
    assert r.status_code == 200
    assert b"".join(r.streaming_content).startswith(b"\x89PNG")

    outsider = _token_client(issue_token(charlie)[1])
    assert outsider.get(lease["image_url"]).status_code == 404
    assert APIClient().get(lease["image_url"]).status_code == 404
