"""A project never ends without an owner: role changes and removals lock the project's row
before they count the owners, so two owners demoting or removing each other at once leave
one of them owner (PostgreSQL, two connections); the same refusals in sequence everywhere."""
import threading

import pytest
from django.db import connection

from annotator.access import Invalid
from annotator.models import Membership, Role
from annotator.projects import members
from annotator.projects.members import add_member, change_role, remove_member


def _owners(project):
    return sorted(Membership.objects.filter(project=project, role=Role.OWNER).values_list("user__username", flat=True))


@pytest.fixture
def two_owners(project):
    add_member(project, "bob", Role.OWNER)
    return project


def test_owners_demoting_each_other_in_turn_leave_one(two_owners):
    change_role(two_owners, "bob", Role.VIEWER)
    with pytest.raises(Invalid, match="only owner"):
        change_role(two_owners, "alice", Role.VIEWER)
    assert _owners(two_owners) == ["alice"]


def test_owners_removing_each_other_in_turn_leave_one(two_owners):
    remove_member(two_owners, "alice")
    with pytest.raises(Invalid, match="only owner"):
        remove_member(two_owners, "bob")
    with pytest.raises(Invalid, match="only owner"):
        add_member(two_owners, "bob", Role.ANNOTATOR)
    assert _owners(two_owners) == ["bob"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL=postgres://...)")
@pytest.mark.parametrize("first, second", [
    (lambda p: change_role(p, "bob", Role.VIEWER), lambda p: change_role(p, "alice", Role.VIEWER)),
    (lambda p: remove_member(p, "bob"), lambda p: add_member(p, "alice", Role.ANNOTATOR)),
])
def test_two_owners_demoting_each_other_at_once_leave_one(two_owners, monkeypatch, first, second):
    """Each change counts the owners, then waits (up to 2 s) for the other to have counted too
    before it writes. Locking only the target rows, both counted two owners and both wrote:
    no owner left. With the project row locked, the second waits for the first to commit."""
    counted = threading.Barrier(2)
    only_owner = members._only_owner

    def count_then_wait(project, membership):
        result = only_owner(project, membership)
        try:
            counted.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass  # the other change is waiting for our lock: go on
        return result

    monkeypatch.setattr(members, "_only_owner", count_then_wait)
    refusals, errors = [], []

    def run(change):
        try:
            change(two_owners)
        except Invalid as exc:
            refusals.append(exc.message)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(change,)) for change in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(refusals) == 1 and "only owner" in refusals[0]
    assert len(_owners(two_owners)) == 1
