"""annotator.asgi's handler: the middleware chain and the view run synchronously, in one
thread hop per request (Django's own handler ran each middleware hook in a thread of its
own), and every middleware still runs: the security headers, the CSRF check, the answer."""
import asyncio
import json

import pytest
from asgiref.sync import SyncToAsync

from annotator.accounts.tokens import issue_token
from annotator.asgi import django_asgi_app
from tests.annotator.test_request_limits import Upload

pytestmark = pytest.mark.django_db


class Get(Upload):
    """A request without a body: one empty message, then the client waits for the answer."""

    async def receive(self):
        if self.pulled:
            await asyncio.Event().wait()
        self.pulled = 1
        return {"type": "http.request", "body": b"", "more_body": False}


@pytest.fixture
def hops(monkeypatch):
    """How many times anything was handed to a worker thread (asgiref's sync_to_async)."""
    count = {"n": 0}
    real = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        count["n"] += 1
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    return count


def _answer_and_next(project, bob, item):
    _, key = issue_token(bob)
    body = json.dumps({"item": item.pk, "label": "one", "idempotency_key": "k-1"}).encode()
    upload = Upload("POST", f"/api/projects/{project.pk}/answer-and-next/", body,
                    headers=[("authorization", f"Token {key}"), ("content-type", "application/json")])
    upload.run()
    return upload


def _response(upload):
    start = next(m for m in upload.messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in upload.messages if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


def test_the_chain_is_synchronous():
    assert not asyncio.iscoroutinefunction(django_asgi_app._middleware_chain)


def test_a_labeling_request_takes_few_thread_hops(project, bob, make_items, hops):
    """Django's own handler took about 16 (two per middleware hook); here the request signals,
    the chain with its view, and closing the response."""
    from annotator.labeling.leasing import lease_next

    item = make_items(2)[0]
    lease_next(project, bob)
    status, headers, body = _response(_answer_and_next(project, bob, item))
    assert status == 201, body
    assert json.loads(body)["annotation"]["label"] == "one"
    assert hops["n"] <= 4, hops["n"]


def test_every_middleware_still_runs(project, bob, make_items):
    make_items(1)
    _, key = issue_token(bob)
    upload = Get("GET", f"/api/projects/{project.pk}/", b"", headers=[("authorization", f"Token {key}")])
    upload.run()
    status, headers, body = _response(upload)
    assert status == 200, body
    assert headers["x-frame-options"] == "DENY"  # XFrameOptionsMiddleware
    assert headers["x-content-type-options"] == "nosniff"  # SecurityMiddleware
    assert "content-security-policy" in headers  # django-csp


def test_a_page_form_without_its_csrf_token_is_refused(client, alice):
    """The CSRF middleware runs in the synchronous chain: a signed-in POST without the token."""
    client.force_login(alice)
    session = client.cookies["sessionid"].value
    upload = Upload("POST", "/projects/new/", b"name=X", headers=[
        ("cookie", f"sessionid={session}"), ("content-type", "application/x-www-form-urlencoded")])
    upload.run()
    status, _, _ = _response(upload)
    assert status == 403
