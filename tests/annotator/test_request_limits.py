"""The request-size limit in front of Django (annotator/request_limits.py), driven through the
real ASGI application: bodies over the limit get 413 before they are read, large uploads only
for the owners of the project in the URL, and the per-file limits still answer on their own."""
import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from rest_framework.test import APIClient

from annotator.asgi import application
from annotator.models import Item
from annotator.request_limits import UPLOAD_ROUTES
from tests.conftest import PASSWORD, png_bytes

MB = 1024 * 1024
CHUNK = 64 * 1024


class Upload:
    """One HTTP request through the ASGI app: the body is handed out in CHUNK pieces and the
    test sees how much of it the app asked for."""

    def __init__(self, method, path, body, *, headers=(), declare_length=True):
        self.body = body
        self.pulled = 0
        self.messages = []
        header_list = [(b"host", b"localhost"), *[(k.encode(), v.encode()) for k, v in headers]]
        if declare_length:
            header_list.append((b"content-length", str(len(body)).encode()))
        else:
            header_list.append((b"transfer-encoding", b"chunked"))
        self.scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
            "headers": header_list, "client": ("127.0.0.1", 5000), "server": ("localhost", 80),
        }

    async def receive(self):
        if self.pulled >= len(self.body) and self.pulled:
            await asyncio.Event().wait()  # as a server does: the client stays until the answer
        part = self.body[self.pulled:self.pulled + CHUNK]
        self.pulled += len(part)
        return {"type": "http.request", "body": part, "more_body": self.pulled < len(self.body)}

    async def send(self, message):
        self.messages.append(message)

    def run(self):
        # As Django's test client does: the handler's request signals must not close the test's
        # database connection (the views run on this thread, inside the test transaction).
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            async_to_sync(application)(self.scope, self.receive, self.send)
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        self.status = start["status"]
        self.headers = dict(start["headers"])
        self.content = b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")
        return self


class LazyBody:
    """A body of `size` bytes that only exists as far as it is read (150 MB without 150 MB)."""

    def __init__(self, size, prefix=b""):
        self.size = size
        self.prefix = prefix

    def __len__(self):
        return self.size

    def __getitem__(self, part):
        start, stop = part.start, min(part.stop, self.size)
        head = self.prefix[start:stop]
        return head + b"x" * max(0, stop - start - len(head))


def multipart(field, name, data, boundary="limitsboundary"):
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def token_header(username):
    token = APIClient().post("/api/auth/token/", {"username": username, "password": PASSWORD}).json()["token"]
    return ("authorization", f"Token {token}")


def session_cookie(client, user):
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


@pytest.fixture
def limits(settings):
    settings.REQUEST_MAX_BYTES = 1 * MB
    settings.UPLOAD_MAX_REQUEST_BYTES = 8 * MB
    return settings


@pytest.mark.django_db
def test_it_refuses_a_declared_150mb_anonymous_login_post_without_reading_it(limits):
    upload = Upload("POST", "/accounts/login/", LazyBody(150 * MB),
                    headers=[("content-type", "application/x-www-form-urlencoded")]).run()
    assert upload.status == 413
    assert upload.pulled == 0
    assert b"larger than 1.0 MB" in upload.content
    assert upload.headers[b"content-type"].startswith(b"text/plain")


@pytest.mark.django_db
def test_it_stops_reading_a_streamed_150mb_body_at_the_limit(limits):
    upload = Upload("POST", "/accounts/login/", LazyBody(150 * MB), declare_length=False,
                    headers=[("content-type", "application/x-www-form-urlencoded")]).run()
    assert upload.status == 413
    assert upload.pulled <= limits.REQUEST_MAX_BYTES + CHUNK
    assert [m["status"] for m in upload.messages if m["type"] == "http.response.start"] == [413]


@pytest.mark.django_db
def test_a_body_that_lies_about_its_length_is_counted(limits):
    upload = Upload("POST", "/accounts/login/", LazyBody(20 * MB), declare_length=False,
                    headers=[("content-type", "application/x-www-form-urlencoded"), ("content-length", "10")])
    upload.run()
    assert upload.status == 413
    assert upload.pulled <= limits.REQUEST_MAX_BYTES + CHUNK


@pytest.mark.django_db
def test_an_ordinary_post_under_the_limit_reaches_django(limits, alice):
    body = f"username=alice&password={PASSWORD}".encode()
    upload = Upload("POST", "/accounts/login/", body,
                    headers=[("content-type", "application/x-www-form-urlencoded")]).run()
    assert upload.status == 403  # Django's CSRF refusal: the body got through to Django
    assert upload.pulled == len(body)


@pytest.mark.django_db
def test_api_refusals_are_json(limits, project, client, alice):
    upload = Upload("POST", f"/api/projects/{project.pk}/annotations/", LazyBody(3 * MB),
                    headers=[("content-type", "application/json"), ("cookie", session_cookie(client, alice))]).run()
    assert upload.status == 413
    assert "REQUEST_MAX_BYTES" in json.loads(upload.content)["detail"]


def _large_image_upload(path, who_headers, size=3 * MB):
    body, content_type = multipart("file", "big.png", png_bytes(0) + b"\0" * (size - len(png_bytes(0))))
    return Upload("POST", path, body, headers=[("content-type", content_type), *who_headers]).run()


@pytest.mark.django_db
def test_the_owner_may_upload_a_large_body_to_the_api(limits, project, alice, settings):
    settings.IMPORT_MAX_FILE_BYTES = 4 * MB
    upload = _large_image_upload(f"/api/projects/{project.pk}/images/", [token_header("alice")])
    assert upload.status in (200, 201), upload.content[:300]
    assert upload.pulled > limits.REQUEST_MAX_BYTES


@pytest.mark.django_db
def test_the_owner_may_upload_a_large_body_on_the_page(limits, project, alice, client, settings):
    settings.IMPORT_MAX_FILE_BYTES = 4 * MB
    cookie = session_cookie(client, alice)
    csrf = "c" * 32
    upload = _large_image_upload(f"/projects/{project.pk}/import/",
                                 [("cookie", f"{cookie}; csrftoken={csrf}"), ("x-csrftoken", csrf)])
    assert upload.status == 200, upload.content[:300]
    assert upload.pulled > limits.REQUEST_MAX_BYTES


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["bob", "dave", "charlie", "anonymous"])
def test_others_get_the_small_limit_on_upload_routes(limits, project, charlie, client, who):
    headers = [] if who == "anonymous" else [("cookie", session_cookie(client, _user(who)))]
    for path in (f"/api/projects/{project.pk}/images/", f"/projects/{project.pk}/import/",
                 f"/api/projects/{project.pk}/model/checkpoint/", f"/projects/{project.pk}/model/checkpoint/"):
        upload = _large_image_upload(path, headers)
        assert upload.status == 413, path
        assert upload.pulled <= limits.REQUEST_MAX_BYTES + CHUNK
        assert b"project owners" in upload.content
    assert Item.objects.count() == 0


def _user(username):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


@pytest.mark.django_db
def test_the_owner_is_still_held_to_the_upload_limit(limits, project, alice, client):
    cookie = session_cookie(client, alice)
    upload = Upload("POST", f"/api/projects/{project.pk}/images/", LazyBody(9 * MB), declare_length=False,
                    headers=[("content-type", "multipart/form-data; boundary=x"), ("cookie", cookie)]).run()
    assert upload.status == 413
    assert upload.pulled <= limits.UPLOAD_MAX_REQUEST_BYTES + CHUNK
    assert "UPLOAD_MAX_REQUEST_BYTES" in json.loads(upload.content)["detail"]


@pytest.mark.django_db
def test_an_owner_of_another_project_gets_the_small_limit(limits, project, charlie, client):
    from annotator.projects.changes import create_project

    create_project(charlie, name="Other", classes=["a", "b"])
    upload = _large_image_upload(f"/api/projects/{project.pk}/images/", [("cookie", session_cookie(client, charlie))])
    assert upload.status == 413


@pytest.mark.django_db
def test_the_per_image_limit_still_answers_for_each_file(limits, project, alice, settings):
    settings.IMPORT_MAX_FILE_BYTES = 2 * MB
    upload = _large_image_upload(f"/api/projects/{project.pk}/images/", [token_header("alice")])
    assert upload.status == 200
    report = json.loads(upload.content)
    assert report["rejected"] == 1
    assert "the limit per image" in report["files"][0]["reason"]


@pytest.mark.django_db
def test_the_checkpoint_limit_still_answers_with_its_own_sentence(limits, project, alice, settings):
    settings.CHECKPOINT_UPLOAD_MAX_MB = 1
    body, content_type = multipart("checkpoint", "model.pt", b"\0" * (2 * MB))
    upload = Upload("POST", f"/api/projects/{project.pk}/model/checkpoint/", body,
                    headers=[("content-type", content_type), token_header("alice")]).run()
    assert upload.status == 400
    assert "CHECKPOINT_UPLOAD_MAX_MB" in json.loads(upload.content)["detail"]


def test_the_upload_routes_exist():
    from django.urls import reverse

    for name in UPLOAD_ROUTES:
        assert reverse(name, kwargs={"pk": 1})


@pytest.mark.django_db
def test_an_upload_while_the_database_is_down_is_a_503_not_a_500(limits, project, alice, monkeypatch):
    """Who may upload is read from the database before Django runs: an outage there answers
    503 with Retry-After (clients retry), without reading the body."""
    from django.db import OperationalError

    from annotator import request_limits

    def down(*args):
        raise OperationalError("connection refused")

    monkeypatch.setattr(request_limits, "may_upload", down)
    upload = _large_image_upload(f"/api/projects/{project.pk}/images/", [token_header("alice")])
    assert upload.status == 503 and upload.headers[b"retry-after"] == b"2"
    assert "database is unavailable" in json.loads(upload.content)["detail"]
    assert upload.pulled == 0
