"""The review API: POST review/next/ and reviews/ for owners and reviewers; annotators and
viewers are refused (403), outsiders learn nothing (404). Reviewers may read the dashboard."""
import pytest
from django.contrib.auth import get_user_model

from annotator.labeling.answers import submit_annotation
from annotator.models import AnnotationChange, Item, Review, Role
from annotator.projects.changes import update_settings
from annotator.projects.members import add_member
from tests.conftest import PASSWORD


@pytest.fixture
def rita(project):
    user = get_user_model().objects.create_user("rita", "rita@example.com", PASSWORD)
    add_member(project, "rita", Role.REVIEWER)
    return user


@pytest.fixture
def split(project, alice, bob, make_items):
    """An item bob and alice labeled differently, and an item bob was unsure about."""
    update_settings(project, annotations_per_item=2)
    disputed, doubtful = make_items(2)
    submit_annotation(project, bob, item_id=disputed.pk, label="one", idempotency_key="b1")
    submit_annotation(project, alice, item_id=disputed.pk, label="two", idempotency_key="a1")
    submit_annotation(project, bob, item_id=doubtful.pk, unsure=True, idempotency_key="b2")
    return disputed, doubtful


def _next(client, project):
    return client.post(f"/api/projects/{project.pk}/review/next/", format="json")


def _verdict(client, project, **body):
    return client.post(f"/api/projects/{project.pk}/reviews/", body, format="json")


def test_a_reviewer_gets_the_next_item_with_its_answers_and_reasons(project, api, rita, split):
    disputed, doubtful = split
    r = _next(api(rita), project)
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["queue"] == {"disagreement": 1, "unsure": 1, "suspect": 0, "sample": 0, "total": 2}
    shown = body["next"]
    assert set(shown) == {"item", "name", "image_url", "width", "height", "reasons", "answers", "guess",
                          "suspect_guess", "lease_expires"}
    assert shown["item"] == disputed.pk and shown["reasons"] == ["disagreement"]
    assert [(a["annotator"], a["label"]) for a in shown["answers"]] == [("bob", "one"), ("alice", "two")]
    assert shown["guess"] is None and shown["image_url"].endswith(f"/items/{disputed.pk}/image/")


def test_a_fix_is_recorded_and_the_next_item_follows(project, api, rita, split):
    disputed, doubtful = split
    _next(api(rita), project)
    r = _verdict(api(rita), project, item=disputed.pk, verdict="fix", label="one")
    assert r.status_code == 201, r.content
    assert r.json()["verdict"] == "fix" and r.json()["labels"] == ["one"] and r.json()["reviewer"] == "rita"
    assert AnnotationChange.objects.get().changed_by == rita
    shown = _next(api(rita), project).json()["next"]
    assert shown["item"] == doubtful.pk and shown["reasons"] == ["unsure"]
    r = _verdict(api(rita), project, item=doubtful.pk, verdict="accept")
    assert r.status_code == 400 and "no label to accept" in r.json()["detail"]
    assert _verdict(api(rita), project, item=doubtful.pk, verdict="fix", label="zero").status_code == 201
    assert _next(api(rita), project).json() == {
        "next": None, "queue": {"disagreement": 0, "unsure": 0, "suspect": 0, "sample": 0, "total": 0}}


def test_the_owner_reviews_too_but_not_what_a_reviewer_holds(project, api, alice, rita, split):
    disputed, doubtful = split
    assert _next(api(rita), project).json()["next"]["item"] == disputed.pk
    assert _next(api(alice), project).json()["next"]["item"] == doubtful.pk
    r = _verdict(api(alice), project, item=disputed.pk, verdict="fix", label="two")
    assert r.status_code == 409 and "Another reviewer" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"item": 1, "verdict": "maybe"}, "verdict"), ({"verdict": "fix", "label": "one"}, "item"),
     ({"item": 0, "verdict": "accept"}, "item"), ({"item": 1, "verdict": "fix", "labels": "one"}, "labels")],
)
def test_malformed_verdicts_are_refused_by_field(project, api, rita, body, field):
    r = _verdict(api(rita), project, **body)
    assert r.status_code == 400 and field in r.json()
    assert not Review.objects.exists()


def test_a_missing_item_is_a_404_with_a_sentence(project, api, rita):
    r = _verdict(api(rita), project, item=999999, verdict="accept")
    assert r.status_code == 404 and "not in this project" in r.json()["detail"]


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_annotators_and_viewers_may_not_review(project, api, split, who, request):
    client = api(request.getfixturevalue(who))
    disputed, _doubtful = split
    for r in (_next(client, project), _verdict(client, project, item=disputed.pk, verdict="fix", label="one")):
        assert r.status_code == 403 and "owner or reviewer" in r.json()["detail"]
    assert not Review.objects.exists() and Item.objects.filter(reviewed_at__isnull=False).count() == 0


def test_outsiders_learn_nothing(project, api, charlie, split):
    disputed, _doubtful = split
    for r in (_next(api(charlie), project), _verdict(api(charlie), project, item=disputed.pk, verdict="accept")):
        assert r.status_code == 404 and r.json()["detail"] == "No such project."


def test_a_reviewer_reads_the_dashboard_but_does_not_label(project, api, rita, client):
    assert api(rita).get(f"/api/projects/{project.pk}/dashboard/").status_code == 200
    assert api(rita).post(f"/api/projects/{project.pk}/next/", format="json").status_code == 403
    client.force_login(rita)
    assert client.get(f"/projects/{project.pk}/dashboard/").status_code == 200
    assert client.get(f"/projects/{project.pk}/label/").status_code == 403


def test_owners_make_someone_a_reviewer_on_the_api_and_the_members_page(project, api, alice, client, charlie):
    r = api(alice).post(f"/api/projects/{project.pk}/members/", {"username": "charlie", "role": "reviewer"},
                        format="json")
    assert r.status_code == 201 and r.json()["role"] == "reviewer"
    assert _next(api(charlie), project).status_code == 200
    client.force_login(alice)
    html = client.get(f"/projects/{project.pk}/settings/").content.decode()
    assert '<option value="reviewer"' in html
