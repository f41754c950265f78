"""Review verdicts: a fix relabels with history (or adds a review answer to an unlabeled
item, which then trains the model), an accept keeps agreeing labels; both record a Review
with the answers as judged and take the item out of the queue. Refusals change nothing."""
import numpy as np
import pytest

from annotator.access import Conflict, Invalid, NotFound
from annotator.modelloop.arrays import label_arrays, ordered_class_ids
from annotator.models import Annotation, AnnotationChange, Item, Review, Role
from annotator.projects.changes import create_project
from annotator.projects.members import add_member
from annotator.review.queue import next_for_review
from annotator.review.verdicts import submit_review


def _split(project, bob, erin, make_items, answer):
    item = make_items(1)[0]
    answer(project, bob, item, "one")
    answer(project, erin, item, "two")
    return item


def test_a_fix_relabels_every_live_label_with_history(two_per_item, bob, erin, rita, make_items, answer):
    item = _split(two_per_item, bob, erin, make_items, answer)
    assert next_for_review(two_per_item, rita).item == item
    review = submit_review(two_per_item, rita, item_id=item.pk, verdict="fix", label="two")
    assert review.verdict == "fix" and review.labels == ["two"] and review.reasons == ["disagreement"]
    assert [(a["username"], a["labels"]) for a in review.answers] == [("bob", ["one"]), ("erin", ["two"])]
    live = Annotation.objects.filter(item=item, undone=False).order_by("pk")
    assert [a.label.name for a in live] == ["two", "two"]
    change = AnnotationChange.objects.get()
    assert (change.changed_by, change.old_label, change.new_label) == (rita, "one", "two")
    item.refresh_from_db()
    assert item.reviewed_by == rita and item.reviewed_at is not None and item.label_count == 2
    assert next_for_review(two_per_item, rita) is None


def test_an_accept_keeps_agreeing_labels(project, bob, rita, make_items, answer):
    item = make_items(1)[0]
    answer(project, bob, item, "one")
    review = submit_review(project, rita, item_id=item.pk, verdict="accept")
    assert review.labels == ["one"] and not AnnotationChange.objects.exists()
    with pytest.raises(Conflict, match="already reviewed"):
        submit_review(project, rita, item_id=item.pk, verdict="fix", label="two")


def test_an_unsure_only_item_is_labeled_by_the_fix_and_trains(project, bob, rita, make_items, answer):
    item, other = make_items(2)
    answer(project, bob, item, unsure=True)
    answer(project, bob, other, "zero")
    ids, _names = ordered_class_ids(project)
    pool = np.array(sorted(Item.objects.values_list("pool_index", flat=True)))
    before, _soft = label_arrays(project, pool, ids)
    assert before[item.pool_index] == -1
    review = submit_review(project, rita, item_id=item.pk, verdict="fix", label="two")
    assert review.reasons == ["unsure"] and review.answers[0]["unsure"] and review.answers[0]["labels"] is None
    given = Annotation.objects.get(item=item, source=Annotation.Source.REVIEW)
    assert given.annotator == rita and given.label.name == "two" and not given.skipped
    item.refresh_from_db()
    assert item.label_count == 1 and item.done
    after, _soft = label_arrays(project, pool, ids)
    assert after[item.pool_index] == 2
    assert Annotation.objects.get(item=item, annotator=bob).unsure  # the unsure answer stays as it was


@pytest.mark.parametrize(
    ("setup", "verdict", "body", "error", "message"),
    [
        ("split", "accept", {}, Invalid, "disagree"),
        ("unsure", "accept", {}, Invalid, "no label to accept"),
        ("split", "fix", {}, Invalid, "needs the right class"),
        ("split", "fix", {"label": "seven"}, Invalid, "Unknown class"),
        ("split", "fix", {"labels": ["one"]}, Invalid, "one class per image"),
        ("split", "accept", {"label": "one"}, Invalid, "carries no class"),
        ("split", "maybe", {}, Invalid, "Unknown verdict"),
    ],
)
def test_wrong_verdicts_are_refused_and_change_nothing(two_per_item, bob, erin, rita, make_items, answer, setup,
                                                       verdict, body, error, message):
    if setup == "split":
        item = _split(two_per_item, bob, erin, make_items, answer)
    else:
        item = make_items(1)[0]
        answer(two_per_item, bob, item, unsure=True)
    with pytest.raises(error, match=message):
        submit_review(two_per_item, rita, item_id=item.pk, verdict=verdict, **body)
    item.refresh_from_db()
    assert item.reviewed_at is None and not Review.objects.exists() and not AnnotationChange.objects.exists()


def test_an_item_held_by_another_reviewer_is_refused(two_per_item, alice, bob, erin, rita, make_items, answer):
    item = _split(two_per_item, bob, erin, make_items, answer)
    assert next_for_review(two_per_item, alice).item == item
    with pytest.raises(Conflict, match="Another reviewer"):
        submit_review(two_per_item, rita, item_id=item.pk, verdict="fix", label="one")
    submit_review(two_per_item, alice, item_id=item.pk, verdict="fix", label="one")


def test_an_item_of_another_project_or_without_answers(project, alice, rita, make_items):
    other = create_project(alice, name="Other", classes=["a", "b"])
    stranger = make_items(1, target=other)[0]
    with pytest.raises(NotFound):
        submit_review(project, rita, item_id=stranger.pk, verdict="accept")
    with pytest.raises(Conflict, match="no answer"):
        submit_review(project, rita, item_id=make_items(1)[0].pk, verdict="accept")


def test_a_multi_label_fix_replaces_the_sets(alice, bob, make_items, answer):
    tags = create_project(alice, name="Tags", classes=["cat", "dog", "car"], multi_label=True, annotations_per_item=2)
    add_member(tags, "bob", Role.ANNOTATOR)
    item = make_items(1, target=tags)[0]
    answer(tags, bob, item, labels=["cat"])
    answer(tags, alice, item, labels=["cat", "dog"])
    with pytest.raises(Invalid, match="'labels'"):
        submit_review(tags, alice, item_id=item.pk, verdict="fix", label="cat")
    review = submit_review(tags, alice, item_id=item.pk, verdict="fix", labels=["dog", "cat"])
    assert review.labels == ["cat", "dog"] and review.reasons == ["disagreement"]
    sets = [sorted(c.name for c in a.labels.all()) for a in Annotation.objects.filter(item=item).order_by("pk")]
    assert sets == [["cat", "dog"], ["cat", "dog"]]
    change = AnnotationChange.objects.get()
    assert (change.old_label, change.new_label) == ("cat", "{cat, dog}")


def test_a_reviewer_with_verdicts_is_deactivated_never_deleted(client, project, alice, bob, rita, make_items, answer):
    from django.db.models import ProtectedError
    from django.urls import reverse

    item = make_items(1)[0]
    answer(project, bob, item, "one")
    submit_review(project, rita, item_id=item.pk, verdict="accept")  # an accept changes no answer
    with pytest.raises(ProtectedError):
        rita.delete()
    alice.is_staff = alice.is_superuser = True
    alice.save()
    client.force_login(alice)
    r = client.post(reverse("admin:auth_user_delete", args=[rita.pk]), {"post": "yes"}, follow=True)
    assert "Deactivate it instead" in r.content.decode() and Review.objects.get().reviewer == rita
