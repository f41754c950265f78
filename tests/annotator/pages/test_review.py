"""The review page: owners and reviewers see the next item with its answers and reasons, and
judge it with plain forms; annotators are refused (403), outsiders get 404."""
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from annotator.labeling.answers import submit_annotation
from annotator.models import Annotation, Review, Role
from annotator.projects.changes import create_project, update_settings
from annotator.projects.members import add_member
from tests.conftest import PASSWORD


@pytest.fixture
def rita(project):
    user = get_user_model().objects.create_user("rita", "rita@example.com", PASSWORD)
    add_member(project, "rita", Role.REVIEWER)
    return user


@pytest.fixture
def disputed(project, alice, bob, make_items):
    update_settings(project, annotations_per_item=2)
    item = make_items(1)[0]
    submit_annotation(project, bob, item_id=item.pk, label="one", idempotency_key="b1")
    submit_annotation(project, alice, item_id=item.pk, label="two", idempotency_key="a1")
    return item


def _page(client, user, project):
    client.force_login(user)
    return client.get(reverse("review", args=[project.pk]))


def test_a_reviewer_sees_the_item_its_answers_and_why(client, project, rita, disputed):
    r = _page(client, rita, project)
    assert r.status_code == 200
    html = r.content.decode()
    assert f'data-item="{disputed.pk}"' in html and 'data-reason="disagreement"' in html
    assert "<strong>one</strong>" in html and "<strong>two</strong>" in html
    assert "1</strong> image to review" in html
    assert 'value="accept"' in html and 'name="label" value="zero"' in html


def test_a_fix_from_the_form_is_saved_and_the_page_moves_on(client, project, rita, disputed):
    _page(client, rita, project)
    r = client.post(reverse("review-verdict", args=[project.pk]),
                    {"item": disputed.pk, "verdict": "fix", "label": "two"}, follow=True)
    assert r.redirect_chain[-1][0] == reverse("review", args=[project.pk])
    assert "Fixed: two." in r.content.decode() and "Nothing to review right now" in r.content.decode()
    assert Review.objects.get().reviewer == rita
    assert set(Annotation.objects.values_list("label__name", flat=True)) == {"two"}


@pytest.mark.parametrize(("body", "message"), [
    ({"verdict": "accept"}, "disagree"), ({"verdict": "fix"}, "needs the right class"),
    ({"verdict": "fix", "label": "nine"}, "Unknown class"), ({"verdict": "fix", "item": "x"}, "Reload the page")])
def test_a_refused_verdict_says_why_and_changes_nothing(client, project, rita, disputed, body, message):
    _page(client, rita, project)
    data = {"item": disputed.pk, **body}
    r = client.post(reverse("review-verdict", args=[project.pk]), data, follow=True)
    assert message in r.content.decode()
    assert not Review.objects.exists()


def test_a_multi_label_fix_takes_the_checked_classes(client, alice, bob, make_items):
    tags = create_project(alice, name="Tags", classes=["cat", "dog"], multi_label=True, annotations_per_item=2)
    add_member(tags, "bob", Role.ANNOTATOR)
    item = make_items(1, target=tags)[0]
    submit_annotation(tags, bob, item_id=item.pk, labels=["cat"], idempotency_key="b1")
    submit_annotation(tags, alice, item_id=item.pk, labels=["dog"], idempotency_key="a1")
    assert 'name="labels" value="dog"' in _page(client, alice, tags).content.decode()
    client.post(reverse("review-verdict", args=[tags.pk]), {"item": item.pk, "verdict": "fix"})  # nothing checked
    assert Review.objects.get().labels == []
    assert [list(a.labels.all()) for a in Annotation.objects.filter(item=item)] == [[], []]


def test_annotators_are_refused_and_outsiders_learn_nothing(client, project, bob, charlie, disputed):
    assert _page(client, bob, project).status_code == 403
    assert _page(client, charlie, project).status_code == 404
    client.force_login(bob)
    r = client.post(reverse("review-verdict", args=[project.pk]), {"item": disputed.pk, "verdict": "accept"})
    assert r.status_code == 403 and not Review.objects.exists()


def test_the_project_page_links_reviewers_to_review_and_the_dashboard(client, project, rita, bob):
    client.force_login(rita)
    html = client.get(reverse("project-detail", args=[project.pk])).content.decode()
    assert reverse("review", args=[project.pk]) in html and reverse("project-dashboard", args=[project.pk]) in html
    assert reverse("label", args=[project.pk]) not in html
    client.force_login(bob)
    assert reverse("review", args=[project.pk]) not in client.get(reverse("project-detail", args=[project.pk])).content.decode()
