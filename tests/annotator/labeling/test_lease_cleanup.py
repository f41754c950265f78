"""`next` deletes the project's expired leases, and on PostgreSQL it never waits for an
expired lease row that another request holds (every `next` of a project used to queue
behind the first one that found the same expired rows)."""
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from annotator.labeling.leasing import lease_next
from annotator.models import Lease


def _expire(*leases):
    Lease.objects.filter(pk__in=[lease.pk for lease in leases]).update(expires_at=timezone.now() - timedelta(seconds=1))


def test_next_deletes_the_expired_leases_of_the_project(project, alice, bob, make_items):
    make_items(4)
    first, second = lease_next(project, alice), lease_next(project, bob)
    _expire(first, second)
    mine = lease_next(project, alice)
    assert list(Lease.objects.filter(project=project).values_list("pk", flat=True)) == [mine.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL=postgres://...) for real row locks")
def test_next_skips_an_expired_lease_another_request_holds(project, alice, bob, make_items):
    make_items(4)
    held = lease_next(project, alice)
    free = lease_next(project, alice, exclude=[held.item_id])
    _expire(held, free)
    locked, release = threading.Event(), threading.Event()

    def other_request():  # holds the row lock of one expired lease until told to commit
        try:
            with transaction.atomic():
                list(Lease.objects.select_for_update().filter(pk=held.pk))
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=other_request)
    thread.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:  # waiting would fail here instead of hanging
            cursor.execute("SET lock_timeout = '2s'")
        lease = lease_next(project, bob)
    finally:
        release.set()
        thread.join(30)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    assert lease is not None
    left = set(Lease.objects.filter(project=project).values_list("pk", flat=True))
    assert left == {held.pk, lease.pk}  # the free expired row went, the held one was skipped
    lease_next(project, alice)  # alice holds no live lease: a new one, after the clean-up
    assert not Lease.objects.filter(pk=held.pk).exists()  # and goes on a later call
