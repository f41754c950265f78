"""Several trainers on PostgreSQL: claims race on SKIP LOCKED rows and never give one
project to two trainers; a dead trainer's projects move to a live one."""
import threading
import time

import pytest
from django.db import connection

from annotator.modelloop.trainer import Trainer
from annotator.models import TrainerState
from annotator.projects.changes import create_project
from tests.annotator.modelloop.trainer_helpers import SHAPES, add_shape_items

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL=postgres://...)"),
]


def make_projects(alice, n):
    projects = []
    for i in range(n):
        project = create_project(alice, name=f"P{i}", classes=SHAPES)
        add_shape_items(project, 1, seed=i)
        projects.append(project)
    return projects


def test_concurrent_claims_never_share_a_project(alice, settings):
    settings.TRAINER_LEASE_SECONDS = 60
    projects = make_projects(alice, 12)
    trainers = [Trainer(f"t{i}", max_projects=3, publish=lambda *a: None) for i in range(6)]
    claims, errors = {}, []
    barrier = threading.Barrier(len(trainers))

    def claim(trainer):
        try:
            barrier.wait()
            for _ in range(3):
                claims.setdefault(trainer.name, []).extend(trainer.claim())
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(t,)) for t in trainers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    taken = [pk for pks in claims.values() for pk in pks]
    assert len(taken) == len(set(taken)) == len(projects)  # every project once, by exactly one trainer
    assert all(len(pks) <= 3 for pks in claims.values())
    owners = dict(TrainerState.objects.values_list("project_id", "owner"))
    for name, pks in claims.items():
        assert all(owners[pk] == name for pk in pks)


def test_a_dead_trainers_projects_move_to_a_live_one(alice, settings):
    settings.TRAINER_LEASE_SECONDS = 2
    settings.TRAINER_POLL_SECONDS = 0.05
    projects = make_projects(alice, 4)
    dead = Trainer("dead", max_projects=2, publish=lambda *a: None)
    assert len(dead.claim()) == 2  # then it "dies": no heartbeat, no release
    live = Trainer("live", publish=lambda *a: None)
    runner = threading.Thread(target=live.run)
    runner.start()
    try:
        time.sleep(1.0)
        assert set(live.held) == {p.pk for p in projects} - set(dead.held)  # the free ones at once
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(live.held) < 4:
            time.sleep(0.1)
        assert set(live.held) == {p.pk for p in projects}  # the dead one's after its lease expired
    finally:
        live.stop.set()
        runner.join(30)
    dead.heartbeat()
    assert dead.lost == set(dead.held)  # had it been alive, it would now drop them
    assert set(TrainerState.objects.values_list("owner", flat=True)) == {""}  # live released on stop
