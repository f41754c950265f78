"""Many annotators leasing and answering at once on the embedded default (SQLite: WAL, a busy
timeout, IMMEDIATE transactions): writers wait for each other instead of failing with
"database is locked", and every answer is stored once."""
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.models import Annotation, Role
from annotator.projects.members import add_member
from tests.conftest import PASSWORD

ANNOTATORS = 24
ANSWERS_EACH = 6


def test_sqlite_writers_queue_instead_of_failing(settings):
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        options = settings.DATABASES["default"]["OPTIONS"]
        assert options["transaction_mode"] == "IMMEDIATE" and options["timeout"] >= 5
        assert "journal_mode=WAL" in options["init_command"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_many_annotators_answer_at_once_without_an_error(project, make_items):
    make_items(ANNOTATORS * ANSWERS_EACH + 10)
    users = []
    for n in range(ANNOTATORS):
        get_user_model().objects.create_user(f"annotator{n}", password=PASSWORD)
        add_member(project, f"annotator{n}", Role.ANNOTATOR)
        users.append(get_user_model().objects.get(username=f"annotator{n}"))
    errors, answered = [], []
    start = threading.Barrier(ANNOTATORS)

    def annotate(user):
        try:
            start.wait()
            for i in range(ANSWERS_EACH):
                item = lease_next(project, user).item
                submit_annotation(project, user, item_id=item.pk, label="one", idempotency_key=f"{user.pk}-{i}")
                answered.append(item.pk)
        except Exception as exc:  # noqa: BLE001 - every failure is collected and reported
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=annotate, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [], errors[:5]
    assert len(answered) == ANNOTATORS * ANSWERS_EACH
    assert Annotation.objects.filter(item__project=project).count() == ANNOTATORS * ANSWERS_EACH
    assert len(set(answered)) == len(answered)  # annotations_per_item=1: no item served twice
