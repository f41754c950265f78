"""PATCH|DELETE /api/projects/{id}/members/{username}/ and the services behind them: change a
role, remove a member; a project always keeps an owner."""
import pytest

from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.models import Annotation, Lease, Membership, Role
from annotator.projects.members import add_member


def _url(project, username):
    return f"/api/projects/{project.pk}/members/{username}/"


def _role(project, username):
    membership = Membership.objects.filter(project=project, user__username=username).first()
    return membership.role if membership else None


def test_owner_changes_a_role(project, api, alice):
    r = api(alice).patch(_url(project, "dave"), {"role": "annotator"}, format="json")
    assert r.status_code == 200
    assert r.json() == {"username": "dave", "role": "annotator"}
    assert _role(project, "dave") == Role.ANNOTATOR


def test_the_only_owner_cannot_be_demoted(project, api, alice):
    r = api(alice).patch(_url(project, "alice"), {"role": "viewer"}, format="json")
    assert r.status_code == 400
    assert "only owner" in r.json()["detail"]
    assert _role(project, "alice") == Role.OWNER


def test_an_owner_steps_down_when_another_owner_remains(project, api, alice):
    add_member(project, "bob", Role.OWNER)
    assert api(alice).patch(_url(project, "alice"), {"role": "annotator"}, format="json").status_code == 200
    assert _role(project, "alice") == Role.ANNOTATOR


@pytest.mark.parametrize("body", [{"role": "admin"}, {}, {"role": ""}])
def test_it_validates_the_role(project, api, alice, body):
    r = api(alice).patch(_url(project, "dave"), body, format="json")
    assert r.status_code == 400
    assert "role" in r.json()
    assert _role(project, "dave") == Role.VIEWER


def test_changing_a_non_member_is_404(project, api, alice, charlie):
    r = api(alice).patch(_url(project, "charlie"), {"role": "viewer"}, format="json")
    assert r.status_code == 404
    assert "not a member" in r.json()["detail"]
    assert _role(project, "charlie") is None
    assert api(alice).delete(_url(project, "nobody")).status_code == 404


def test_owner_removes_a_member_whose_answers_stay(project, api, alice, bob, make_items):
    make_items(3)
    lease = lease_next(project, bob)
    submit_annotation(project, bob, item_id=lease.item_id, label="one", idempotency_key="k")
    lease_next(project, bob)
    assert Lease.objects.filter(user=bob).exists()
    r = api(alice).delete(_url(project, "bob"))
    assert r.status_code == 204
    assert _role(project, "bob") is None
    assert not Lease.objects.filter(user=bob).exists()
    assert Annotation.objects.filter(annotator=bob, undone=False).count() == 1
    assert api(bob).get(f"/api/projects/{project.pk}/").status_code == 404


def test_the_only_owner_cannot_be_removed(project, api, alice):
    r = api(alice).delete(_url(project, "alice"))
    assert r.status_code == 400
    assert "only owner" in r.json()["detail"]
    assert _role(project, "alice") == Role.OWNER


def test_an_owner_may_leave_when_another_owner_remains(project, api, alice):
    add_member(project, "dave", Role.OWNER)
    assert api(alice).delete(_url(project, "alice")).status_code == 204
    assert _role(project, "alice") is None and _role(project, "dave") == Role.OWNER


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_annotators_and_viewers_cannot_change_members(project, api, who, request):
    client = api(request.getfixturevalue(who))
    assert client.patch(_url(project, "dave"), {"role": "owner"}, format="json").status_code == 403
    assert client.delete(_url(project, "alice")).status_code == 403
    assert (_role(project, "dave"), _role(project, "alice")) == (Role.VIEWER, Role.OWNER)


def test_it_rejects_outsider(project, api, charlie):
    assert api(charlie).patch(_url(project, "dave"), {"role": "owner"}, format="json").status_code == 404
    assert api(charlie).delete(_url(project, "dave")).status_code == 404
    assert _role(project, "dave") == Role.VIEWER


def test_it_rejects_anonymous(project, api):
    assert api(None).patch(_url(project, "dave"), {"role": "owner"}, format="json").status_code == 401
    assert api(None).delete(_url(project, "dave")).status_code == 401
    assert _role(project, "dave") == Role.VIEWER


def test_usernames_with_dots_and_at_signs_work(project, api, alice, django_user_model):
    django_user_model.objects.create_user("eve.smith@example.com", password="x")
    add_member(project, "eve.smith@example.com", Role.VIEWER)
    assert api(alice).delete(_url(project, "eve.smith@example.com")).status_code == 204
    assert _role(project, "eve.smith@example.com") is None
