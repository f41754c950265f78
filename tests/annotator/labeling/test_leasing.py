"""The queue rules of annotator.labeling.leasing, independent of HTTP."""
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from annotator.access import LABELING_ROLES, Conflict, Forbidden, Invalid, project_for
from annotator.labeling.answers import answer_and_next, submit_annotation, undo_last
from annotator.labeling.leasing import lease_next
from annotator.models import Annotation, Lease
from annotator.projects.changes import create_project
from annotator.projects.members import add_member
from annotator.projects.selectors import project_stats


def test_it_returns_the_current_lease_until_answered(project, bob, make_items):
    make_items(5)
    first = lease_next(project, bob)
    again = lease_next(project, bob)
    assert first.pk == again.pk
    submit_annotation(project, bob, item_id=first.item_id, label="one", idempotency_key="k1")
    after = lease_next(project, bob)
    assert after.item_id != first.item_id


def test_answer_and_next_answers_and_leases_the_next_item_left_out_of_exclude(project, bob, make_items):
    make_items(5)
    first = lease_next(project, bob)
    prefetched = lease_next(project, bob, exclude=[first.item_id])
    outcome = answer_and_next(project, bob, item_id=first.item_id, label="one", skip=False, idempotency_key="k1",
                              duration_ms=900, exclude=[prefetched.item_id])
    assert outcome.submitted.created and outcome.submitted.annotation.label.name == "one"
    assert outcome.submitted.annotation.duration_ms == 900
    assert outcome.next.item_id not in {first.item_id, prefetched.item_id}
    assert set(Lease.objects.filter(user=bob).values_list("item_id", flat=True)) == {prefetched.item_id, outcome.next.item_id}
    # Without exclude the next item is the one the caller already holds (its oldest lease).
    again = answer_and_next(project, bob, item_id=first.item_id, label="one", skip=False, idempotency_key="k1", duration_ms=900)
    assert not again.submitted.created and again.submitted.annotation.pk == outcome.submitted.annotation.pk
    assert again.next.item_id == prefetched.item_id
    skipped = answer_and_next(project, bob, item_id=prefetched.item_id, label=None, skip=True, idempotency_key="k2",
                              duration_ms=None)
    assert skipped.submitted.annotation.skipped and skipped.next.item_id == outcome.next.item_id


def test_answer_and_next_refuses_as_submit_does_and_leases_nothing(project, bob, make_items):
    make_items(2)
    lease = lease_next(project, bob)
    with pytest.raises(Invalid, match="Unknown class"):
        answer_and_next(project, bob, item_id=lease.item_id, label="seven", skip=False, idempotency_key="k", duration_ms=None)
    assert list(Lease.objects.filter(user=bob).values_list("item_id", flat=True)) == [lease.item_id]
    second = answer_and_next(project, bob, item_id=lease.item_id, label="one", skip=False, idempotency_key="k",
                             duration_ms=None).next
    assert second.item_id != lease.item_id
    with pytest.raises(Conflict, match="already answered"):
        answer_and_next(project, bob, item_id=lease.item_id, label="two", skip=False, idempotency_key="k3", duration_ms=None)
    assert list(Lease.objects.filter(user=bob).values_list("item_id", flat=True)) == [second.item_id]
    # The last item answered: nothing is left to lease.
    last = answer_and_next(project, bob, item_id=second.item_id, label="two", skip=False, idempotency_key="k4", duration_ms=None)
    assert last.submitted.created and last.next is None
    assert not Lease.objects.filter(user=bob).exists()


def test_it_serves_in_priority_order(project, bob, make_items):
    items = make_items(4)
    best = min(items, key=lambda i: i.priority)
    assert lease_next(project, bob).item_id == best.pk


def test_two_annotators_never_hold_the_same_item(project, alice, bob, make_items):
    make_items(2)
    a = lease_next(project, alice)
    b = lease_next(project, bob)
    assert a.item_id != b.item_id
    # Pool exhausted for a third holder while both leases are live.
    assert lease_next(project, alice, exclude=[a.item_id]) is None


def test_prefetch_gives_a_second_item_and_no_third(project, bob, make_items):
    make_items(5)
    current = lease_next(project, bob)
    prefetched = lease_next(project, bob, exclude=[current.item_id])
    assert prefetched.item_id != current.item_id
    assert lease_next(project, bob, exclude=[current.item_id, prefetched.item_id]) is None
    assert Lease.objects.filter(user=bob).count() == 2


def test_an_expired_lease_comes_back_to_others(project, alice, bob, make_items):
    make_items(1)
    lease = lease_next(project, bob)
    assert lease_next(project, alice) is None
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert lease_next(project, alice).item_id == lease.item_id


def test_a_replayed_submit_makes_one_annotation(project, bob, make_items):
    make_items(2)
    lease = lease_next(project, bob)
    first = submit_annotation(project, bob, item_id=lease.item_id, label="two", idempotency_key="same")
    replay = submit_annotation(project, bob, item_id=lease.item_id, label="two", idempotency_key="same")
    assert first.created and not replay.created
    assert first.annotation.pk == replay.annotation.pk
    assert Annotation.objects.filter(annotator=bob).count() == 1


def test_the_same_key_with_another_body_is_a_conflict(project, bob, make_items):
    make_items(2)
    lease = lease_next(project, bob)
    submit_annotation(project, bob, item_id=lease.item_id, label="two", idempotency_key="same")
    with pytest.raises(Conflict):
        submit_annotation(project, bob, item_id=lease.item_id, label="one", idempotency_key="same")


def test_a_late_submit_is_accepted_while_the_item_is_open(project, bob, make_items):
    make_items(1)
    lease = lease_next(project, bob)
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    result = submit_annotation(project, bob, item_id=lease.item_id, label="zero", idempotency_key="late")
    assert result.created
    lease.item.refresh_from_db()
    assert lease.item.done and lease.item.label_count == 1


def test_a_late_submit_on_a_taken_item_is_refused(project, alice, bob, make_items):
    make_items(1)
    lease = lease_next(project, bob)
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    taken = lease_next(project, alice)
    submit_annotation(project, alice, item_id=taken.item_id, label="one", idempotency_key="a1")
    with pytest.raises(Conflict, match="not saved"):
        submit_annotation(project, bob, item_id=lease.item_id, label="zero", idempotency_key="late")
    assert not Annotation.objects.filter(annotator=bob).exists()


def test_undo_reopens_the_item_as_current(project, bob, make_items):
    make_items(3)
    lease = lease_next(project, bob)
    submit_annotation(project, bob, item_id=lease.item_id, label="one", idempotency_key="u1")
    lease_next(project, bob)
    undone = undo_last(project, bob)
    assert undone.undone
    assert lease_next(project, bob).item_id == lease.item_id
    lease.item.refresh_from_db()
    assert lease.item.label_count == 0 and not lease.item.done
    submit_annotation(project, bob, item_id=lease.item_id, label="two", idempotency_key="u2")
    assert Annotation.objects.get(item=lease.item, undone=False).label.name == "two"


def test_a_skip_leaves_the_item_open_for_others(project, alice, bob, make_items):
    make_items(1)
    lease = lease_next(project, bob)
    submit_annotation(project, bob, item_id=lease.item_id, skip=True, idempotency_key="s1")
    assert lease_next(project, bob) is None
    assert lease_next(project, alice).item_id == lease.item_id
    assert project_stats(project)["skipped"] == 1


def test_overlap_lets_k_annotators_label_one_item_never_the_same_twice(project, alice, bob, make_items):
    project.annotations_per_item = 2
    project.save()
    make_items(1)
    a = lease_next(project, alice)
    b = lease_next(project, bob)
    assert a.item_id == b.item_id
    submit_annotation(project, alice, item_id=a.item_id, label="one", idempotency_key="o1")
    assert lease_next(project, alice) is None
    submit_annotation(project, bob, item_id=b.item_id, label="one", idempotency_key="o2")
    a.item.refresh_from_db()
    assert a.item.done and a.item.label_count == 2


def test_stats_count_live_answers(project, alice, bob, make_items):
    make_items(3)
    for user, label, key in [(bob, "one", "b1"), (alice, "two", "a1")]:
        lease = lease_next(project, user)
        submit_annotation(project, user, item_id=lease.item_id, label=label, idempotency_key=key)
    stats = project_stats(project)
    assert stats == {
        "items": 3,
        "labeled": 2,
        "skipped": 0,
        "per_class": {"zero": 0, "one": 1, "two": 1},
        "per_annotator": {"bob": 1, "alice": 1},
    }


def test_outsiders_get_404_and_viewers_cannot_label(project, charlie, dave):
    from django.http import Http404

    with pytest.raises(Http404):
        project_for(charlie, project.pk)
    with pytest.raises(Forbidden):
        project_for(dave, project.pk, roles=LABELING_ROLES)


def test_the_only_owner_cannot_be_demoted(project):
    with pytest.raises(Invalid, match="only owner"):
        add_member(project, "alice", "annotator")
    add_member(project, "bob", "owner")
    add_member(project, "alice", "annotator")
    assert project.role_of(project.memberships.get(user__username="alice").user) == "annotator"


def test_hotkeys_are_the_class_names_when_they_are_single_keys(alice):
    digits = create_project(alice, name="MNIST", classes=[str(d) for d in range(10)])
    assert [c.hotkey for c in digits.ordered_classes()] == [str(d) for d in range(10)]
    animals = create_project(alice, name="Pets", classes=["cat", "dog", "s"])
    assert [c.hotkey for c in animals.ordered_classes()] == ["1", "2", "3"]


def test_hotkeys_never_take_the_viewer_keys(alice):
    """o (original size) and i (instructions) belong to the labeling page, like s, u, z, a."""
    letters = create_project(alice, name="Letters", classes=["o", "i", "x"])
    assert [c.hotkey for c in letters.ordered_classes()] == ["1", "2", "3"]
    many = create_project(alice, name="Many", classes=[f"class {n}" for n in range(40)])
    keys = [c.hotkey for c in many.ordered_classes()]
    assert keys[:9] == [str(d) for d in range(1, 10)] and not {"o", "i", "s", "u", "z", "a"} & set(keys)
    assert len(set(k for k in keys if k)) == len([k for k in keys if k]) == 27  # 9 digits + 18 letters


def test_audit_draws_ignore_the_queue_and_cover_the_pool(project, bob, make_items):
    """With every lease an audit, the draw is independent of the model: the top-ranked
    items come up as often as their share, over imports (each draws the items' priorities
    afresh, as here every 20 draws), and every item can come up."""
    import random

    from annotator.models import Item, ModelVersion, QueueEntry

    items = make_items(40)
    version = ModelVersion.objects.create(project=project, number=1, kind="fast")
    QueueEntry.objects.bulk_create(QueueEntry(project=project, item=item, rank=r, version=version)
                                   for r, item in enumerate(items[:10]))
    project.audit_fraction = 1.0
    project.save()
    drawn = []
    for n in range(400):
        if n % 20 == 0:
            for item in items:
                Item.objects.filter(pk=item.pk).update(priority=random.random())
        lease = lease_next(project, bob)
        assert lease.is_audit
        drawn.append(lease.item_id)
        Lease.objects.filter(pk=lease.pk).delete()
    queued = {item.pk for item in items[:10]}
    share = sum(d in queued for d in drawn) / len(drawn)
    assert 0.15 < share < 0.35  # 10 of 40 items are queued: 0.25 expected
    assert len(set(drawn)) >= 36  # nearly every item drawn at least once
    assert Counter(drawn).most_common(1)[0][1] < 40  # none dominates (10 expected each)


def test_queue_order_is_kept_when_nothing_is_audited(project, bob, make_items):
    from annotator.models import ModelVersion, QueueEntry

    items = make_items(12)
    version = ModelVersion.objects.create(project=project, number=1, kind="fast")
    ranked = list(reversed(items[:5]))
    QueueEntry.objects.bulk_create(QueueEntry(project=project, item=item, rank=r, version=version)
                                   for r, item in enumerate(ranked))
    project.audit_fraction = 0.0
    project.save()
    served = []
    for i in range(5):
        lease = lease_next(project, bob)
        served.append(lease.item_id)
        submit_annotation(project, bob, item_id=lease.item_id, label="one", idempotency_key=f"q{i}")
    assert served == [item.pk for item in ranked]
