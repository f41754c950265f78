"""The account page: a user creates, lists and revokes their own API tokens."""
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.accounts.tokens import issue_token
from annotator.models import ApiToken


def test_it_creates_a_token_shown_once(client, alice):
    client.force_login(alice)
    r = client.post(reverse("account"), {"name": "my script"})
    assert r.status_code == 200
    key = r.context["new_key"]
    assert key in r.content.decode() and "my script" in r.content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/projects/").status_code == 200
    page = client.get(reverse("account")).content.decode()
    assert key not in page and key[:8] in page


def test_it_lists_only_the_callers_tokens(client, alice, bob):
    issue_token(alice, "alice-ci")
    issue_token(bob, "bob-laptop")
    client.force_login(alice)
    page = client.get(reverse("account")).content.decode()
    assert "alice-ci" in page and "bob-laptop" not in page


def test_it_revokes_a_token(client, alice):
    token, _ = issue_token(alice, "old")
    client.force_login(alice)
    r = client.post(reverse("token-revoke", args=[token.pk]), follow=True)
    assert "was revoked" in r.content.decode()
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_an_outsider_cannot_revoke_someone_elses_token(client, alice, charlie):
    token, _ = issue_token(alice)
    client.force_login(charlie)
    r = client.post(reverse("token-revoke", args=[token.pk]), follow=True)
    assert f"You have no token with id {token.pk}" in r.content.decode()
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_it_needs_a_sign_in(client, alice):
    token, _ = issue_token(alice)
    assert client.get(reverse("account"))["Location"].startswith(reverse("login"))
    assert client.post(reverse("token-revoke", args=[token.pk]))["Location"].startswith(reverse("login"))
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_revoking_needs_a_post(client, alice):
    token, _ = issue_token(alice)
    client.force_login(alice)
    assert client.get(reverse("token-revoke", args=[token.pk])).status_code == 405
