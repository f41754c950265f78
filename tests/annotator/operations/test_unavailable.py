"""A database that cannot be reached answers 503 with Retry-After (JSON under /api/), never a
500; a query the database rejects is still a 500. The restart itself, against a real
PostgreSQL, is tests/faults/test_postgres_restart.py."""
from unittest import mock

import pytest
from django.db import IntegrityError, InterfaceError, OperationalError
from rest_framework.test import APIClient

from annotator.accounts.tokens import issue_token
from annotator.operations.unavailable import MESSAGE

pytestmark = pytest.mark.django_db

DOWN = OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')


def _api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user, 'test')[1]}")
    return client


@pytest.mark.parametrize("error", [DOWN, InterfaceError("connection already closed")])
def test_the_api_answers_503_with_retry_after_while_the_database_is_down(project, bob, error):
    with mock.patch("annotator.api.leasing.lease_next", side_effect=error):
        response = _api(bob).post(f"/api/projects/{project.pk}/next/", {}, format="json")
    assert response.status_code == 503
    assert response.json() == {"detail": MESSAGE}
    assert response["Retry-After"] == "2"
    assert "traceback" not in response.content.decode().lower()


def test_a_page_answers_a_short_503_page(client, project, bob, settings):
    settings.UNAVAILABLE_RETRY_AFTER_S = 7
    client.force_login(bob)
    with mock.patch("annotator.pages.projects.projects_for_user", side_effect=DOWN):
        response = client.get("/projects/")
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert response["Content-Type"].startswith("text/html")
    assert MESSAGE in response.content.decode()


def test_a_query_the_database_rejects_is_still_a_server_error(project, bob):
    client = _api(bob)
    client.raise_request_exception = True
    with mock.patch("annotator.api.leasing.lease_next", side_effect=IntegrityError("duplicate key")):
        with pytest.raises(IntegrityError):
            client.post(f"/api/projects/{project.pk}/next/", {}, format="json")


def test_an_outsider_gets_404_as_always_when_the_database_is_up(project, charlie):
    response = _api(charlie).post(f"/api/projects/{project.pk}/next/", {}, format="json")
    assert response.status_code == 404
