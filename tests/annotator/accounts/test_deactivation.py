"""Users are deactivated, never deleted with their labels: deleting one with answers is
refused (in the admin, with a message saying to deactivate), and a deactivated account can
neither sign in nor use its session or tokens, while its labels keep counting."""
import pytest
from django.db.models import ProtectedError
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.accounts.tokens import issue_token
from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.models import Annotation, ApiToken, Item
from annotator.projects.selectors import project_stats
from tests.conftest import PASSWORD


@pytest.fixture
def labeled_by_bob(project, bob, make_items):
    make_items(2)
    lease = lease_next(project, bob)
    submit_annotation(project, bob, item_id=lease.item_id, label="one", idempotency_key="k1")
    return Item.objects.get(pk=lease.item_id)


@pytest.fixture
def staff(alice):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    return alice


def test_deleting_a_user_with_labels_is_refused_and_the_labels_stay(project, bob, labeled_by_bob):
    # The finding: the delete cascaded to bob's answers while the item stayed label_count=1,
    # done=True, so it was never served again and the statistics lied.
    with pytest.raises(ProtectedError):
        bob.delete()
    item = Item.objects.get(pk=labeled_by_bob.pk)
    live = Annotation.objects.filter(item=item, undone=False, skipped=False).count()
    assert (item.label_count, item.done, live) == (1, True, 1)
    assert project_stats(project)["per_annotator"] == {"bob": 1}


def test_the_admin_refuses_the_delete_and_says_to_deactivate(client, staff, bob, labeled_by_bob):
    client.force_login(staff)
    url = reverse("admin:auth_user_delete", args=[bob.pk])
    for response in (client.get(url, follow=True), client.post(url, {"post": "yes"}, follow=True)):
        assert response.redirect_chain[-1][0] == reverse("admin:auth_user_change", args=[bob.pk])
        assert "Deactivate it instead" in response.content.decode()
    assert Annotation.objects.filter(annotator=bob).count() == 1


def test_the_admin_still_deletes_an_account_without_labels(client, staff, charlie):
    client.force_login(staff)
    response = client.post(reverse("admin:auth_user_delete", args=[charlie.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not type(charlie).objects.filter(pk=charlie.pk).exists()


def test_the_admin_deactivates_instead_of_bulk_deleting(client, staff, bob, labeled_by_bob):
    _, key = issue_token(bob)
    client.force_login(staff)
    changelist = reverse("admin:auth_user_changelist")
    page = client.get(changelist).content.decode()
    assert 'value="deactivate"' in page and 'value="delete_selected"' not in page
    client.post(changelist, {"action": "deactivate", "_selected_action": [bob.pk]})
    bob.refresh_from_db()
    assert not bob.is_active
    assert not ApiToken.objects.filter(user=bob).exists()
    assert Annotation.objects.filter(annotator=bob).count() == 1


def test_a_deactivated_user_cannot_sign_in_and_their_session_ends(client, project, bob):
    other = type(client)()
    other.force_login(bob)
    assert other.get(reverse("project-detail", args=[project.pk])).status_code == 200
    _, key = issue_token(bob)
    bob.is_active = False
    bob.save()
    assert other.get(reverse("project-detail", args=[project.pk])).status_code == 302  # to the sign-in page
    response = client.post(reverse("login"), {"username": "bob", "password": PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get(f"/api/projects/{project.pk}/").status_code == 401


def test_a_deactivated_account_cannot_be_added_to_a_project(project, api, alice, charlie):
    charlie.is_active = False
    charlie.save()
    missing = api(alice).post(f"/api/projects/{project.pk}/members/", {"username": "nobody", "role": "annotator"})
    inactive = api(alice).post(f"/api/projects/{project.pk}/members/", {"username": "charlie", "role": "annotator"})
    assert missing.status_code == inactive.status_code == 400
    assert missing.json()["detail"].replace("nobody", "X") == inactive.json()["detail"].replace("charlie", "X")
