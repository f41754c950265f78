"""Member-checked images: streamed a block at a time under ASGI (never the whole file in
memory), or handed to the proxy with MEDIA_ACCEL; outsiders still get 404."""
import warnings

import pytest
from django.core.files.base import ContentFile
from django.test import AsyncClient

from annotator.models import Item
from annotator.pages import media


@pytest.fixture
def big_item(project):
    """An item whose original is 1 MB (random bytes: only its transport matters here)."""
    item = Item(project=project, content_hash="f" * 64, width=32, height=24, pool_index=0, priority=0.5)
    item.image.save("big.png", ContentFile(bytes(range(256)) * 4096), save=False)
    item.save()
    return item


def _url(item, original=True):
    return f"/projects/{item.project_id}/items/{item.pk}/image/" + ("?original=1" if original else "")


def _async_get(client, user, url, **extra):
    client.force_login(user)
    async_client = AsyncClient()
    async_client.cookies = client.cookies
    from asgiref.sync import async_to_sync

    async def get():
        response = await async_client.get(url, **extra)
        chunks = [chunk async for chunk in response.streaming_content] if response.streaming else [response.content]
        return response, chunks

    return async_to_sync(get)()


@pytest.mark.django_db(transaction=True)
def test_it_streams_the_file_in_blocks_under_asgi(client, bob, big_item, monkeypatch):
    monkeypatch.setattr(media, "BLOCK_BYTES", 64 * 1024)
    with warnings.catch_warnings():
        # Django warns (and reads the whole file into a list) when an ASGI response has a
        # synchronous iterator: that is what must not happen.
        warnings.simplefilter("error")
        response, chunks = _async_get(client, bob, _url(big_item))
    assert response.status_code == 200
    assert response.streaming and response.is_async
    assert response["Content-Length"] == str(1024 * 1024)
    assert response["Cache-Control"] == "private, max-age=86400"
    assert len(chunks) == 16 and {len(c) for c in chunks} == {64 * 1024}
    assert b"".join(chunks) == big_item.image.open("rb").read()


@pytest.mark.django_db
def test_it_still_streams_under_wsgi(client, bob, big_item):
    client.force_login(bob)
    response = client.get(_url(big_item))
    assert response.status_code == 200 and response.streaming
    assert b"".join(response.streaming_content) == bytes(range(256)) * 4096


@pytest.mark.django_db
def test_with_nginx_the_proxy_sends_the_file(client, bob, big_item, settings):
    settings.MEDIA_ACCEL = "nginx"
    settings.MEDIA_ACCEL_PREFIX = "/protected-media/"
    client.force_login(bob)
    response = client.get(_url(big_item))
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == "/protected-media/" + big_item.image.name
    assert response["Content-Type"] == "image/png"
    assert response.content == b""
    assert not response.has_header("X-Sendfile")


@pytest.mark.django_db
def test_with_apache_the_header_names_the_file(client, bob, big_item, settings):
    settings.MEDIA_ACCEL = "apache"
    client.force_login(bob)
    response = client.get(_url(big_item))
    assert response["X-Sendfile"] == big_item.image.path
    assert response.content == b""


@pytest.mark.django_db
@pytest.mark.parametrize("accel", ["off", "nginx", "apache"])
def test_it_rejects_outsider(client, charlie, big_item, settings, accel):
    settings.MEDIA_ACCEL = accel
    client.force_login(charlie)
    response = client.get(_url(big_item))
    assert response.status_code == 404
    assert not response.has_header("X-Accel-Redirect") and not response.has_header("X-Sendfile")


@pytest.mark.django_db
@pytest.mark.parametrize("accel", ["off", "nginx"])
def test_it_rejects_anonymous(client, big_item, settings, accel):
    settings.MEDIA_ACCEL = accel
    assert client.get(_url(big_item)).status_code == 404


@pytest.mark.django_db
def test_a_missing_file_is_a_404_for_the_proxy_too(client, bob, big_item, settings):
    settings.MEDIA_ACCEL = "nginx"
    big_item.image.storage.delete(big_item.image.name)
    client.force_login(bob)
    assert client.get(_url(big_item)).status_code == 404
