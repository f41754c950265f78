"""GET|POST /api/projects/{id}/members/."""
from annotator.models import Membership, Role


def _url(project):
    return f"/api/projects/{project.pk}/members/"


def test_it_lists_members_with_roles_to_any_member(project, api, dave):
    r = api(dave).get(_url(project))
    assert r.status_code == 200
    assert r.json() == [
        {"username": "alice", "role": "owner"},
        {"username": "bob", "role": "annotator"},
        {"username": "dave", "role": "viewer"},
    ]


def test_owner_adds_a_member(project, api, alice, charlie):
    r = api(alice).post(_url(project), {"username": "charlie", "role": "annotator"}, format="json")
    assert r.status_code == 201
    assert r.json() == {"username": "charlie", "role": "annotator"}
    assert Membership.objects.get(project=project, user=charlie).role == Role.ANNOTATOR
    assert api(charlie).get(f"/api/projects/{project.pk}/").status_code == 200


def test_owner_changes_a_members_role(project, api, alice, dave):
    r = api(alice).post(_url(project), {"username": "dave", "role": "annotator"}, format="json")
    assert r.status_code == 200
    assert r.json() == {"username": "dave", "role": "annotator"}
    assert Membership.objects.get(project=project, user=dave).role == Role.ANNOTATOR
    assert Membership.objects.filter(project=project).count() == 3


def test_it_rejects_an_unknown_user_with_a_message(project, api, alice):
    r = api(alice).post(_url(project), {"username": "mallory", "role": "annotator"}, format="json")
    assert r.status_code == 400
    assert "No active account is named 'mallory'" in r.json()["detail"]
    assert Membership.objects.filter(project=project).count() == 3


def test_it_rejects_an_unknown_role(project, api, alice, charlie):
    r = api(alice).post(_url(project), {"username": "charlie", "role": "admin"}, format="json")
    assert r.status_code == 400
    assert "not a valid choice" in r.json()["role"][0]
    assert not Membership.objects.filter(user=charlie).exists()


def test_it_requires_a_username(project, api, alice):
    r = api(alice).post(_url(project), {"role": "viewer"}, format="json")
    assert r.status_code == 400
    assert r.json()["username"] == ["This field is required."]


def test_annotators_and_viewers_cannot_add_members(project, api, bob, dave, charlie):
    for user in (bob, dave):
        r = api(user).post(_url(project), {"username": "charlie", "role": "owner"}, format="json")
        assert r.status_code == 403
        assert "this needs owner" in r.json()["detail"]
    assert not Membership.objects.filter(user=charlie).exists()


def test_it_rejects_outsider(project, api, charlie):
    assert api(charlie).get(_url(project)).status_code == 404
    r = api(charlie).post(_url(project), {"username": "charlie", "role": "owner"}, format="json")
    assert r.status_code == 404
    assert not Membership.objects.filter(user=charlie).exists()


def test_it_rejects_anonymous(project, api):
    assert api(None).get(_url(project)).status_code in (401, 403)
    assert api(None).post(_url(project), {"username": "bob", "role": "owner"}, format="json").status_code in (401, 403)
    assert Membership.objects.get(project=project, user__username="bob").role == Role.ANNOTATOR


def test_the_only_owner_cannot_step_down(project, api, alice):
    r = api(alice).post(_url(project), {"username": "alice", "role": "viewer"}, format="json")
    assert r.status_code == 400
    assert "only owner" in r.json()["detail"]
    assert Membership.objects.get(project=project, user=alice).role == Role.OWNER
