"""GET /healthz and GET /readyz: open to anyone, each part of readiness reported, 503 naming
the part that fails."""
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from annotator.models import TrainerState
from annotator.operations import health

pytestmark = pytest.mark.django_db


def test_healthz_answers_anonymous_callers_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response.headers["Cache-Control"]


def test_it_answers_an_outsider_the_same(client, charlie):
    client.force_login(charlie)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_it_refuses_a_post(client):
    assert client.post("/healthz").status_code == 405


def test_readyz_reports_every_part(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) == {"database", "channel_layer", "storage", "trainer"}
    assert all(part["ok"] for part in body["checks"].values())
    assert body["checks"]["trainer"]["detail"] == "no project to train"


def test_a_database_failure_is_503_naming_the_database_without_details(client, monkeypatch):
    def broken():
        raise OperationalError("could not connect to server at 10.0.0.5: password authentication failed")

    monkeypatch.setattr(health.connection, "cursor", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert "database" in body["failing"] and body["status"] == "fail"
    assert "10.0.0.5" not in response.content.decode() and "password" not in response.content.decode()
    assert body["checks"]["channel_layer"]["ok"] and body["checks"]["storage"]["ok"]


class SilentLayer:
    """A channel layer that accepts messages and never delivers them (Redis gone quiet)."""

    async def new_channel(self, prefix="specific."):
        return prefix + "x"

    async def send(self, channel, message):
        pass

    async def receive(self, channel):
        import asyncio

        await asyncio.sleep(60)


def test_a_silent_channel_layer_is_503_naming_it(client, monkeypatch):
    monkeypatch.setattr(health, "get_channel_layer", lambda: SilentLayer())
    monkeypatch.setattr(health, "CHANNEL_TIMEOUT_S", 0.05)
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["failing"] == ["channel_layer"]


def test_an_unwritable_media_folder_is_503_naming_storage(client, settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings.MEDIA_ROOT = blocker / "media"  # cannot be created, even by root
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["failing"] == ["storage"]


def test_the_storage_probe_leaves_no_file(client, settings):
    client.get("/readyz")
    assert list(settings.MEDIA_ROOT.iterdir()) == []


def test_a_stale_trainer_heartbeat_is_503_naming_the_trainer(client, project, make_items, settings):
    make_items(2)
    settings.READY_TRAINER_MAX_AGE_S = 60
    state = TrainerState.objects.create(project=project, heartbeat_at=timezone.now() - timedelta(seconds=300))
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["failing"] == ["trainer"]

    state.heartbeat_at = timezone.now() - timedelta(seconds=5)
    state.save()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert 4 <= response.json()["checks"]["trainer"]["heartbeat_age_s"] < 60


def test_no_heartbeat_at_all_is_503_unless_no_trainer_is_required(client, project, make_items, settings):
    make_items(1)
    assert client.get("/readyz").json()["failing"] == ["trainer"]
    settings.READY_REQUIRE_TRAINER = False
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["checks"]["trainer"]["required"] is False
