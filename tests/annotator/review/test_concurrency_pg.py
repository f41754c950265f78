"""Several reviewers at once on PostgreSQL: each asks for the next item and fixes it until the
queue is empty. No item is handed to two reviewers, none is reviewed twice, none is left."""
import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from annotator.labeling.answers import submit_annotation
from annotator.models import Item, Review, Role
from annotator.projects.members import add_member
from annotator.review.queue import next_for_review
from annotator.review.verdicts import submit_review
from tests.conftest import PASSWORD

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL (DATABASE_URL=postgres://...): SQLite runs one writer at a time, so no race shows",
    ),
]

ITEMS = 40
REVIEWERS = 6


def test_reviewers_never_share_an_item(project, bob, make_items):
    reviewers = []
    for i in range(REVIEWERS):
        reviewers.append(get_user_model().objects.create_user(f"reviewer{i}", password=PASSWORD))
        add_member(project, f"reviewer{i}", Role.REVIEWER)
    for n, item in enumerate(make_items(ITEMS)):
        submit_annotation(project, bob, item_id=item.pk, unsure=True, idempotency_key=f"u{n}")
    served, errors, lock = Counter(), [], threading.Lock()
    start = threading.Barrier(REVIEWERS)

    def review(user):
        try:
            start.wait()
            while (candidate := next_for_review(project, user)) is not None:
                with lock:
                    served[candidate.item.pk] += 1
                submit_review(project, user, item_id=candidate.item.pk, verdict="fix", label="one")
        except Exception as exc:  # noqa: BLE001 - reported below with the thread's user
            errors.append(f"{user.username}: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=review, args=(user,)) for user in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert len(served) == ITEMS and set(served.values()) == {1}
    assert Review.objects.count() == ITEMS
    assert Item.objects.filter(project=project, reviewed_at__isnull=True).count() == 0
    assert len({r.reviewer_id for r in Review.objects.all()}) > 1  # the work was shared
