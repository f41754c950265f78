"""Review in a real browser: an annotator's "unsure" (its key) and a disagreement reach the
reviewer's page, who fixes the disagreement with a click and labels the unsure image, which
then counts as labeled. Screenshots go to test-artifacts/."""
import os

from django.contrib.auth import get_user_model

from annotator.labeling.answers import submit_annotation
from annotator.models import Annotation, AnnotationChange, Item, Review, Role
from annotator.projects.changes import update_settings
from annotator.projects.classes import set_none_class
from annotator.projects.members import add_member
from tests.browser.helpers import ARTIFACTS, BROWSER_MARKS, log_in
from tests.conftest import PASSWORD

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls between browser steps

pytestmark = BROWSER_MARKS


def test_unsure_and_a_disagreement_reach_the_reviewer_who_fixes_them(browser, live_server, project, alice, bob,
                                                                     make_items):
    get_user_model().objects.create_user("rita", "rita@example.com", PASSWORD)
    add_member(project, "rita", Role.REVIEWER)
    update_settings(project, annotations_per_item=2)
    set_none_class(project, "none")
    make_items(3)

    # bob: "unsure" by its key on the first image, then "zero" (key 1) on the second.
    page = log_in(browser, live_server, "bob", f"/projects/{project.pk}/label/")
    page.wait_for_function("() => window.labeler.pending() === 0 && window.labeler.prefetchReady()")
    assert "M" in page.inner_text("#unsure-button") and page.inner_text(".class-button.is-none") == "N\nnone"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "labeling-unsure-none.png"))
    doubtful = page.evaluate("() => window.labeler.current()")
    page.keyboard.press("m")
    page.wait_for_function(f"() => window.labeler.current() !== {doubtful}")
    disputed = page.evaluate("() => window.labeler.current()")
    page.keyboard.press("1")
    page.wait_for_function("() => window.labeler.pending() === 0")
    assert Annotation.objects.get(item_id=doubtful, annotator__username="bob").unsure
    assert Annotation.objects.get(item_id=disputed, annotator__username="bob").label.name == "zero"
    # Another annotator disagrees on the second image.
    submit_annotation(project, alice, item_id=disputed, label="two", idempotency_key="alice-1")

    # rita: the disagreement first, with both answers; she fixes it with a click.
    review = log_in(browser, live_server, "rita", f"/projects/{project.pk}/review/")
    assert review.get_attribute("#review-item", "data-item") == str(disputed)
    assert review.is_visible('[data-reason="disagreement"]')
    answers = review.inner_text("#review-answers")
    assert "bob" in answers and "zero" in answers and "alice" in answers and "two" in answers
    assert "2 images to review" in review.inner_text("#review-queue")
    review.screenshot(path=str(ARTIFACTS / "review.png"))
    review.click('#review-fix button[value="two"]')
    review.wait_for_selector("text=Fixed: two.")

    # Then the unsure image; accepting is refused (nothing to accept), a fix labels it.
    assert review.get_attribute("#review-item", "data-item") == str(doubtful)
    assert review.is_visible('[data-reason="unsure"]')
    review.click('#review-accept button')
    review.wait_for_selector("text=no label to accept")
    review.wait_for_load_state()  # static/js/review.js is listening
    review.keyboard.press("2")  # the key of "one" fixes, as its button does
    review.wait_for_selector("text=Nothing to review right now")
    review.screenshot(path=str(ARTIFACTS / "review-done.png"))

    assert list(Review.objects.order_by("pk").values_list("item_id", "verdict", "labels")) == [
        (disputed, "fix", ["two"]), (doubtful, "fix", ["one"])]
    assert AnnotationChange.objects.get().annotation.annotator.username == "bob"
    assert set(Annotation.objects.filter(item_id=disputed).values_list("label__name", flat=True)) == {"two"}
    labeled = Item.objects.get(pk=doubtful)
    assert labeled.label_count == 1 and labeled.reviewed_by.username == "rita"
