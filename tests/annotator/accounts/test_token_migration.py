"""Migration 0006 hashes rest_framework.authtoken's plain tokens: existing clients keep
working (until API_TOKEN_TTL_DAYS from the migration), and the plain-text table is dropped."""
import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.models import ApiToken

migration = importlib.import_module("annotator.migrations.0006_auth_tokens_keep_history")
PLAIN = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.django_db(transaction=True)
def test_plain_tokens_become_hashed_tokens_that_still_work(alice, settings):
    settings.API_TOKEN_TTL_DAYS = 30
    created = "timestamp with time zone" if connection.vendor == "postgresql" else "datetime"
    with connection.cursor() as cursor:  # authtoken's table as its migrations left it
        cursor.execute(f'CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created {created} NOT NULL, '
                       'user_id integer NOT NULL UNIQUE)')
        cursor.execute('INSERT INTO authtoken_token ("key", created, user_id) VALUES (%s, %s, %s)',
                       [PLAIN, timezone.now() - timedelta(days=400), alice.pk])
    with connection.schema_editor() as editor:
        migration.hash_plain_tokens(apps, editor)

    assert "authtoken_token" not in connection.introspection.table_names()
    token = ApiToken.objects.get(user=alice)
    assert token.prefix == PLAIN[:8] and PLAIN not in token.key_hash
    assert abs(token.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {PLAIN}")
    assert client.get("/api/projects/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_without_the_plain_table_it_does_nothing(alice):
    with connection.schema_editor() as editor:
        migration.hash_plain_tokens(apps, editor)
    assert not ApiToken.objects.exists()
