"""The review queue: what puts an item in it (disagreement, unsure, suspect, sample), its
order, one reviewer per item, and the sample's draw (SQL and Python agree; evenly spread)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from annotator.models import Annotation, Item, ReviewLease, Role
from annotator.projects.changes import create_project, update_settings
from annotator.projects.members import add_member
from annotator.review import queue
from annotator.review.queue import next_for_review, queue_counts, sample_draw


def test_it_is_empty_when_answers_agree(two_per_item, bob, erin, rita, make_items, answer):
    item = make_items(1)[0]
    answer(two_per_item, bob, item, "one")
    answer(two_per_item, erin, item, "one")
    assert next_for_review(two_per_item, rita) is None
    assert queue_counts(two_per_item)["total"] == 0


def test_a_disagreement_comes_first_then_unsure(two_per_item, bob, erin, rita, make_items, answer):
    unsure_item, split, agreed = make_items(3)
    answer(two_per_item, bob, unsure_item, unsure=True)
    answer(two_per_item, bob, split, "one")
    answer(two_per_item, erin, split, "two")
    answer(two_per_item, bob, agreed, "zero")
    answer(two_per_item, erin, agreed, "zero")
    first = next_for_review(two_per_item, rita)
    assert first.item == split and first.reasons == ["disagreement"]
    assert [a.label.name for a in first.answers] == ["one", "two"]
    assert queue_counts(two_per_item) == {"disagreement": 1, "unsure": 1, "suspect": 0, "sample": 0, "total": 2}
    again = next_for_review(two_per_item, rita)  # the held item, renewed
    assert again.item == split and again.lease.pk == first.lease.pk


def test_two_reviewers_never_hold_the_same_item(two_per_item, alice, bob, rita, make_items, answer):
    a, b = make_items(2)
    answer(two_per_item, bob, a, unsure=True)
    answer(two_per_item, bob, b, unsure=True)
    mine = next_for_review(two_per_item, rita)
    theirs = next_for_review(two_per_item, alice)
    assert {mine.item, theirs.item} == {a, b}
    assert next_for_review(two_per_item, alice).item == theirs.item  # no third item
    assert ReviewLease.objects.count() == 2


def test_an_expired_lease_frees_the_item(two_per_item, alice, bob, rita, make_items, answer):
    item = make_items(1)[0]
    answer(two_per_item, bob, item, unsure=True)
    held = next_for_review(two_per_item, rita)
    assert next_for_review(two_per_item, alice) is None
    ReviewLease.objects.filter(pk=held.lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert next_for_review(two_per_item, alice).item == item


def test_a_reviewed_item_leaves_the_queue(two_per_item, bob, rita, make_items, answer):
    item = make_items(1)[0]
    answer(two_per_item, bob, item, unsure=True)
    Item.objects.filter(pk=item.pk).update(reviewed_at=timezone.now())
    assert next_for_review(two_per_item, rita) is None


def test_an_undone_answer_takes_its_reason_away(two_per_item, bob, rita, make_items, answer):
    item = make_items(1)[0]
    unsure = answer(two_per_item, bob, item, unsure=True)
    Annotation.objects.filter(pk=unsure.pk).update(undone=True)
    assert next_for_review(two_per_item, rita) is None


def test_suspects_come_from_the_dashboard(monkeypatch, project, bob, rita, make_items, answer):
    agreeing, doubtful = make_items(2)
    answer(project, bob, agreeing, "two")
    answer(project, bob, doubtful, "one")
    monkeypatch.setattr(queue, "suspect_guesses", lambda p: {doubtful.pk: "two", agreeing.pk: "two"})
    got = next_for_review(project, rita)
    assert got.item == doubtful and got.reasons == ["suspect"] and got.suspect_guess == "two"
    assert next_for_review(project, rita).item == doubtful
    assert queue_counts(project)["suspect"] == 2  # counted from the model's list; the served one is re-checked


def test_the_sample_takes_each_answer_below_the_fraction(project, bob, rita, make_items, answer):
    items = make_items(6)
    given = [answer(project, bob, item, "one") for item in items]
    assert next_for_review(project, rita) is None
    update_settings(project, review_fraction=0.5)
    expected = {a.item_id for a in given if sample_draw(a.pk) < 0.5}
    served = set()
    while (got := next_for_review(project, rita)) is not None:
        assert got.reasons == ["sample"]
        served.add(got.item.pk)
        Item.objects.filter(pk=got.item.pk).update(reviewed_at=timezone.now())
    assert served == expected
    update_settings(project, review_fraction=1.0)
    Item.objects.update(reviewed_at=None)
    assert queue_counts(project)["sample"] == 6


def test_the_sql_draw_is_the_python_draw(project, bob, make_items):
    item = make_items(1)[0]
    Annotation.objects.bulk_create(
        Annotation(item=item, annotator=bob, label=project.classes.first(), idempotency_key=f"d{i}", undone=True)
        for i in range(300))
    ids = set(Annotation.objects.values_list("pk", flat=True))
    sql = set(queue.drawn_below(Annotation.objects.all(), 0.3).values_list("pk", flat=True))
    assert sql == {pk for pk in ids if sample_draw(pk) < 0.3}


@pytest.mark.parametrize("stride", [1, 2, 3, 7])
def test_the_draw_is_spread_evenly_over_any_annotators_run(stride):
    """One annotator's answers are a run of ids (every `stride`-th, with others between): the
    share drawn is the fraction, within a percent, for any fraction."""
    ids = range(1000, 1000 + 2000 * stride, stride)
    draws = [sample_draw(i) for i in ids]
    assert all(0 <= d < 1 for d in draws)
    for fraction in (0.05, 0.1, 0.25, 0.5):
        assert abs(sum(d < fraction for d in draws) / len(draws) - fraction) < 0.01


def test_multi_label_sets_disagree_when_they_differ(alice, bob, rita, make_items, answer):
    tags = create_project(alice, name="Tags", classes=["cat", "dog"], multi_label=True, annotations_per_item=2)
    add_member(tags, "bob", Role.ANNOTATOR)
    add_member(tags, "rita", Role.REVIEWER)
    same, different, empty_vs_cat = make_items(3, target=tags)
    for item, first, second in [(same, ["cat", "dog"], ["dog", "cat"]), (different, ["cat"], ["cat", "dog"]),
                                (empty_vs_cat, [], ["cat"])]:
        answer(tags, bob, item, labels=first)
        answer(tags, alice, item, labels=second)
    seen = []
    while (got := next_for_review(tags, rita)) is not None:
        seen.append(got.item)
        Item.objects.filter(pk=got.item.pk).update(reviewed_at=timezone.now())
    assert seen == [different, empty_vs_cat]
