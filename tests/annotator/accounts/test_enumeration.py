"""Usernames cannot be told apart through errors: adding a member who does not exist or who
cannot be added (deactivated), and filtering answers by a username that is nobody's or an
outsider's, give the same sentence (API and pages)."""
import re

from django.urls import reverse

from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.projects.members import remove_member


def _same(first, first_name, second, second_name):
    assert first.replace(first_name, "NAME") == second.replace(second_name, "NAME")


def test_member_add_over_the_api_says_the_same_for_missing_and_deactivated(project, api, alice, charlie):
    charlie.is_active = False
    charlie.save()
    url = f"/api/projects/{project.pk}/members/"
    missing = api(alice).post(url, {"username": "mallory", "role": "annotator"}, format="json")
    inactive = api(alice).post(url, {"username": "charlie", "role": "annotator"}, format="json")
    assert missing.status_code == inactive.status_code == 400
    _same(missing.json()["detail"], "mallory", inactive.json()["detail"], "charlie")


def test_member_add_on_the_page_says_the_same_for_missing_and_deactivated(client, project, alice, charlie):
    charlie.is_active = False
    charlie.save()
    client.force_login(alice)
    url = reverse("project-members", args=[project.pk])
    missing = client.post(url, {"username": "mallory", "role": "annotator"}, HTTP_HX_REQUEST="true").content.decode()
    inactive = client.post(url, {"username": "charlie", "role": "annotator"}, HTTP_HX_REQUEST="true").content.decode()
    error = re.compile(r"No active account is named[^<]*")
    _same(error.search(missing).group(), "mallory", error.search(inactive).group(), "charlie")


def test_the_annotator_filter_says_the_same_for_missing_and_outsider(project, api, dave, charlie):
    url = f"/api/projects/{project.pk}/annotations/"
    missing = api(dave).get(url, {"annotator": "mallory"})
    outsider = api(dave).get(url, {"annotator": "charlie"})
    assert missing.status_code == outsider.status_code == 400
    _same(missing.json()["detail"], "mallory", outsider.json()["detail"], "charlie")


def test_the_annotator_filter_still_finds_a_past_members_answers(project, api, alice, bob, make_items):
    make_items(1)
    lease = lease_next(project, bob)
    answer = submit_annotation(project, bob, item_id=lease.item_id, label="one", idempotency_key="k").annotation
    remove_member(project, "bob")
    r = api(alice).get(f"/api/projects/{project.pk}/annotations/", {"annotator": "bob"})
    assert r.status_code == 200 and [row["id"] for row in r.json()["results"]] == [answer.pk]
