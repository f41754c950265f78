"""Many annotators at once, through the REST API, on PostgreSQL.

20 threads (10 users, two "browser tabs" each) lease, prefetch, answer, skip and retry over a
pool of 200 items until nothing is left. Checked: no item is ever held by two annotators at
once, no answer is stored twice, every item ends with exactly one label, and every answer the
API accepted is in the database.
"""
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.models import Annotation, Item, Lease, Role
from annotator.projects.members import add_member

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL (DATABASE_URL=postgres://...): SQLite runs one writer at a time, so no race shows",
    ),
]

POOL = 200
USERS = 10
TABS_PER_USER = 2
RETRIES_503 = 25
DEADLINE_S = 120


@dataclass
class Log:
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list = field(default_factory=list)
    double_leases: list = field(default_factory=list)
    accepted: list = field(default_factory=list)  # (username, item, key, annotation json)
    refused: list = field(default_factory=list)  # (username, item, detail)
    holds: list = field(default_factory=list)  # (username, item, start, end), inside the true lease
    replays: int = 0
    concurrent_replays: int = 0
    retried_503: int = 0

    def add(self, name, value):
        with self.lock:
            getattr(self, name).append(value)


class Tab:
    """One browser tab of one annotator: its own API client and database connection."""

    def __init__(self, project, user, seed, log):
        self.project, self.user, self.log = project, user, log
        self.rng = random.Random(seed)
        self.client = APIClient()
        self.client.force_authenticate(user)
        self.may_skip = user.username.endswith(("0", "2", "4", "6", "8"))
        self.base = f"/api/projects/{project.pk}"

    def run(self):
        try:
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline:
                held = self._lease()
                if not held:
                    if not self._anything_left():
                        return
                    time.sleep(0.01)
                    continue
                for item_id, start in held:
                    self._answer(item_id, start)
            self.log.add("errors", f"{self.user.username}: still working after {DEADLINE_S} s")
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in the thread
            self.log.add("errors", f"{self.user.username}: {type(exc).__name__}: {exc}")
        finally:
            connection.close()

    def _post(self, url, body):
        """POST, retrying a 503 (the database refused a connection: PostgreSQL's
        max_connections is shared with the tests of the other xdist process) as a client
        does after "try again in a few seconds"; next/ and an answer with its key are safe
        to repeat."""
        for _ in range(RETRIES_503):
            r = self.client.post(url, body, format="json")
            if r.status_code != 503:
                return r
            with self.log.lock:
                self.log.retried_503 += 1
            time.sleep(0.2)
        return r

    def _next(self, exclude=()):
        r = self._post(f"{self.base}/next/", {"exclude": list(exclude)})
        if r.status_code == 204:
            return None
        if r.status_code != 200:
            self.log.add("errors", f"{self.user.username}: next answered {r.status_code} {r.content[:200]!r}")
            return None
        item_id = r.json()["id"]
        start = time.monotonic()
        others = Lease.objects.filter(item_id=item_id, expires_at__gt=timezone.now()).exclude(user=self.user)
        if others.exists():
            self.log.add("double_leases", (self.user.username, item_id, list(others.values_list("user__username", flat=True))))
        return item_id, start

    def _lease(self):
        current = self._next()
        if current is None:
            return []
        held = [current]
        if self.rng.random() < 0.3:  # prefetch the next item, as the labeling page does
            prefetched = self._next(exclude=[current[0]])
            if prefetched is not None and prefetched[0] != current[0]:
                held.append(prefetched)
        return held

    def _anything_left(self):
        mine = Annotation.objects.filter(item=OuterRef("pk"), annotator=self.user, undone=False)
        return Item.objects.filter(project=self.project, done=False).exclude(Exists(mine)).exists()

    def _answer(self, item_id, start):
        skip = self.may_skip and self.rng.random() < 0.1
        body = {"item": item_id, "idempotency_key": uuid.uuid4().hex}
        if skip:
            body["skip"] = True
        else:
            body["label"] = self.rng.choice(["zero", "one", "two"])
        end = time.monotonic()
        if self.rng.random() < 0.15:
            responses = _post_concurrently(self.user, f"{self.base}/annotations/", body, copies=2)
            statuses = sorted(r.status_code for r in responses)
            if statuses == [200, 201]:
                with self.log.lock:
                    self.log.concurrent_replays += 1
                if responses[0].json() != responses[1].json():
                    self.log.add("errors", f"concurrent retry bodies differ: {[r.json() for r in responses]}")
                r = next(r for r in responses if r.status_code == 201)
            elif statuses == [409, 409]:
                r = responses[0]
            else:
                self.log.add("errors", f"concurrent retry of {body} answered {statuses}")
                return
        else:
            r = self._post(f"{self.base}/annotations/", body)
        if r.status_code == 201:
            self.log.add("accepted", (self.user.username, item_id, body["idempotency_key"], r.json()))
            self.log.add("holds", (self.user.username, item_id, start, end))
            if self.rng.random() < 0.25:
                again = self.client.post(f"{self.base}/annotations/", body, format="json")
                if again.status_code != 200 or again.json() != r.json():
                    self.log.add("errors", f"retry of {body} answered {again.status_code} {again.content[:200]!r}")
                with self.log.lock:
                    self.log.replays += 1
        elif r.status_code == 409:
            self.log.add("refused", (self.user.username, item_id, r.json()["detail"]))
        else:
            self.log.add("errors", f"{self.user.username}: answer {body} -> {r.status_code} {r.content[:200]!r}")


def _post_concurrently(user, url, body, *, copies):
    """The same request sent at the same moment from `copies` threads (a retry racing the original)."""
    barrier = threading.Barrier(copies)
    responses = [None] * copies

    def send(i):
        client = APIClient()
        client.force_authenticate(user)
        try:
            barrier.wait()
            responses[i] = client.post(url, body, format="json")
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses


def _overlapping_holds(holds):
    by_item = {}
    for username, item_id, start, end in holds:
        by_item.setdefault(item_id, []).append((start, end, username))
    overlaps = []
    for item_id, spans in by_item.items():
        spans.sort()
        for (_s1, e1, u1), (s2, _e2, u2) in zip(spans, spans[1:]):
            if u1 != u2 and s2 < e1:
                overlaps.append((item_id, u1, u2))
    return overlaps


def test_many_annotators_never_share_an_item_and_lose_nothing(project, alice, make_items):
    project.audit_fraction = 0.2  # some items drawn at random, the rest in queue order
    project.save()
    make_items(POOL)
    users = [alice]
    for i in range(1, USERS):
        user = get_user_model().objects.create_user(f"annotator{i}", password="x")
        add_member(project, user.username, Role.ANNOTATOR)
        users.append(user)

    log = Log()
    tabs = [Tab(project, user, seed=10 * n + tab, log=log) for n, user in enumerate(users) for tab in range(TABS_PER_USER)]
    threads = [threading.Thread(target=tab.run) for tab in tabs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    problems = {"errors": log.errors, "double leases": log.double_leases, "overlaps": _overlapping_holds(log.holds)}
    assert problems == {"errors": [], "double leases": [], "overlaps": []}

    # Every item labeled exactly once (annotations_per_item=1), and nothing is held any more.
    items = Item.objects.filter(project=project)
    assert items.count() == POOL
    assert not items.filter(done=False).exists()
    assert set(items.values_list("label_count", flat=True)) == {1}
    live_labels = Annotation.objects.filter(item__project=project, undone=False, skipped=False)
    assert live_labels.count() == POOL
    assert live_labels.values("item").distinct().count() == POOL
    assert not Lease.objects.exists()

    # Nothing lost, nothing doubled: the rows are exactly the answers the API accepted.
    stored = {a.pk: a for a in Annotation.objects.select_related("annotator", "label")}
    assert len(stored) == len(log.accepted)
    for username, item_id, key, answer in log.accepted:
        row = stored[answer["id"]]
        assert (row.annotator.username, row.item_id, row.idempotency_key) == (username, item_id, key)
        assert (row.label.name if row.label else None, row.skipped) == (answer["label"], answer["skipped"])

    # A refusal only ever meant: the other tab of the same user answered that item first.
    answered = {(username, item_id) for username, item_id, _, _ in log.accepted}
    for username, item_id, detail in log.refused:
        assert (username, item_id) in answered, detail

    # The run exercised what it claims to.
    assert log.replays > 0 and log.concurrent_replays > 0
    assert Annotation.objects.filter(skipped=True).exists()
