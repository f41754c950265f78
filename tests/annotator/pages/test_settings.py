"""The settings page: settings, classes and members; every member reads it, owners change it."""
import pytest
from django.urls import reverse

from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.models import Membership, Project, Role
from annotator.projects.changes import create_project
from annotator.projects.members import add_member

SETTINGS = {"name": "Digits", "strategy": "bald", "query_batch_size": "20", "audit_fraction": "0.3",
            "annotations_per_item": "2"}


def _classes(project):
    return [(c.name, c.hotkey) for c in Project.objects.get(pk=project.pk).ordered_classes()]


def _class_pk(project, name):
    return project.classes.get(name=name).pk


def _member_pk(project, username):
    return Membership.objects.get(project=project, user__username=username).pk


def _posts(project):
    """Every form post of the page, with valid data."""
    one, dave = _class_pk(project, "one"), _member_pk(project, "dave")
    return [
        (reverse("project-settings", args=[project.pk]), SETTINGS),
        (reverse("class-add", args=[project.pk]), {"name": "three"}),
        (reverse("class-rename", args=[project.pk, one]), {"name": "uno"}),
        (reverse("class-move", args=[project.pk, one]), {"direction": "up"}),
        (reverse("class-remove", args=[project.pk, one]), {}),
        (reverse("member-role", args=[project.pk, dave]), {"role": "annotator"}),
        (reverse("member-remove", args=[project.pk, dave]), {}),
    ]


def _unchanged(project):
    assert _classes(project) == [("zero", "1"), ("one", "2"), ("two", "3")]
    assert Project.objects.get(pk=project.pk).strategy == "auto"
    assert project.role_of(Membership.objects.get(project=project, user__username="dave").user) == Role.VIEWER


# --- reading ----------------------------------------------------------------------------------


def test_owner_sees_the_forms(client, project, alice):
    client.force_login(alice)
    r = client.get(reverse("project-settings", args=[project.pk]))
    body = r.content.decode()
    assert r.status_code == 200
    assert 'name="query_batch_size"' in body and reverse("class-add", args=[project.pk]) in body
    assert reverse("member-remove", args=[project.pk, _member_pk(project, "bob")]) in body
    assert reverse("label-import", args=[project.pk]) in body


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_annotators_and_viewers_read_the_settings_without_forms(client, project, who, request):
    client.force_login(request.getfixturevalue(who))
    r = client.get(reverse("project-settings", args=[project.pk]))
    body = r.content.decode()
    assert r.status_code == 200
    assert "only owners change them" in body and "Auto" in body and "zero" in body
    assert 'name="query_batch_size"' not in body
    assert reverse("class-add", args=[project.pk]) not in body
    assert reverse("label-import", args=[project.pk]) not in body
    assert reverse("member-role", args=[project.pk, _member_pk(project, "dave")]) not in body
    assert "alice" in body and "badge-owner" in body


def test_the_overview_links_to_the_settings_and_shows_the_model_status(client, project, dave):
    client.force_login(dave)
    body = client.get(reverse("project-detail", args=[project.pk])).content.decode()
    assert reverse("project-settings", args=[project.pk]) in body
    assert "data-trainer-status" in body and "js/live.js" in body


# --- settings ---------------------------------------------------------------------------------


def test_owner_saves_settings(client, project, alice):
    client.force_login(alice)
    r = client.post(reverse("project-settings", args=[project.pk]), {**SETTINGS, "name": "Digits 2"})
    assert r.status_code == 302 and r["Location"] == reverse("project-settings", args=[project.pk])
    project.refresh_from_db()
    assert (project.name, project.strategy, project.query_batch_size, project.audit_fraction,
            project.annotations_per_item) == ("Digits 2", "bald", 20, 0.3, 2)


def test_owner_saves_settings_with_htmx(client, project, alice):
    client.force_login(alice)
    r = client.post(reverse("project-settings", args=[project.pk]), SETTINGS, HTTP_HX_REQUEST="true")
    body = r.content.decode()
    assert r.status_code == 200
    assert body.lstrip().startswith('<section id="settings-form"') and "Settings saved." in body


@pytest.mark.parametrize(
    "change, message",
    [
        ({"query_batch_size": "0"}, "greater than or equal to 1"),
        ({"audit_fraction": "2"}, "less than or equal to 1"),
        ({"annotations_per_item": "x"}, "Enter a whole number"),
        ({"strategy": "psychic"}, "Select a valid choice"),
        ({"name": "   "}, "This field is required"),
    ],
)
def test_invalid_settings_show_the_error(client, project, alice, change, message):
    client.force_login(alice)
    r = client.post(reverse("project-settings", args=[project.pk]), {**SETTINGS, **change})
    assert r.status_code == 400
    assert message in r.content.decode()
    assert Project.objects.get(pk=project.pk).strategy == "auto"


# --- classes ----------------------------------------------------------------------------------


def test_owner_adds_renames_moves_and_removes_classes(client, project, alice):
    client.force_login(alice)
    hx = {"HTTP_HX_REQUEST": "true"}
    r = client.post(reverse("class-add", args=[project.pk]), {"name": " three "}, **hx)
    assert r.status_code == 200 and r.content.decode().lstrip().startswith('<section id="classes"')
    one = _class_pk(project, "one")
    client.post(reverse("class-rename", args=[project.pk, one]), {"name": "uno"}, **hx)
    client.post(reverse("class-move", args=[project.pk, one]), {"direction": "up"}, **hx)
    assert _classes(project) == [("uno", "1"), ("zero", "2"), ("two", "3"), ("three", "4")]
    r = client.post(reverse("class-remove", args=[project.pk, _class_pk(project, "three")]))
    assert r.status_code == 302
    assert _classes(project) == [("uno", "1"), ("zero", "2"), ("two", "3")]


def test_a_used_class_cannot_be_removed(client, project, alice, bob, make_items):
    make_items(2)
    lease = lease_next(project, bob)
    submit_annotation(project, bob, item_id=lease.item_id, label="one", idempotency_key="k")
    client.force_login(alice)
    body = client.get(reverse("project-settings", args=[project.pk])).content.decode()
    assert "cannot be removed; rename it instead" in body
    r = client.post(reverse("class-remove", args=[project.pk, _class_pk(project, "one")]), HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    assert "cannot be removed: 1 label use it" in r.content.decode()
    r = client.post(reverse("class-remove", args=[project.pk, _class_pk(project, "one")]))
    assert r.status_code == 400
    assert [n for n, _ in _classes(project)] == ["zero", "one", "two"]


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("class-add", {"name": "two"}, "must be unique"),
        ("class-add", {"name": ""}, "Type the new class"),
        ("class-rename", {"name": "x" * 101}, "Type the class"),
        ("class-move", {"direction": "sideways"}, "Move a class up or down"),
    ],
)
def test_bad_class_changes_show_the_reason(client, project, alice, name, data, message):
    client.force_login(alice)
    args = [project.pk] if name == "class-add" else [project.pk, _class_pk(project, "one")]
    r = client.post(reverse(name, args=args), data)
    assert r.status_code == 400
    assert message in r.content.decode()
    assert [n for n, _ in _classes(project)] == ["zero", "one", "two"]


def test_a_class_of_another_project_is_404(client, project, alice):
    other = create_project(alice, name="Other", classes=["x", "y"])
    client.force_login(alice)
    for name, data in [("class-remove", {}), ("class-rename", {"name": "z"}), ("class-move", {"direction": "up"})]:
        assert client.post(reverse(name, args=[project.pk, other.classes.first().pk]), data).status_code == 404
    assert other.class_names() == ["x", "y"]


# --- members ----------------------------------------------------------------------------------


def test_owner_changes_a_role_and_removes_a_member(client, project, alice, dave):
    client.force_login(alice)
    r = client.post(reverse("member-role", args=[project.pk, _member_pk(project, "dave")]), {"role": "annotator"},
                    HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    assert r.content.decode().lstrip().startswith('<section id="members"')
    assert "dave is now annotator" in r.content.decode()
    assert project.role_of(dave) == Role.ANNOTATOR
    r = client.post(reverse("member-remove", args=[project.pk, _member_pk(project, "dave")]), {"back": "settings"})
    assert r.status_code == 302 and r["Location"] == reverse("project-settings", args=[project.pk])
    assert project.role_of(dave) is None


def test_the_only_owner_cannot_be_demoted_or_removed(client, project, alice):
    client.force_login(alice)
    me = _member_pk(project, "alice")
    r = client.post(reverse("member-role", args=[project.pk, me]), {"role": "viewer"}, HTTP_HX_REQUEST="true")
    assert "only owner" in r.content.decode()
    r = client.post(reverse("member-remove", args=[project.pk, me]), HTTP_HX_REQUEST="true")
    assert "only owner" in r.content.decode()
    assert project.role_of(alice) == Role.OWNER


def test_an_unknown_role_is_refused(client, project, alice, dave):
    client.force_login(alice)
    r = client.post(reverse("member-role", args=[project.pk, _member_pk(project, "dave")]), {"role": "admin"})
    assert r.status_code == 302
    assert "Unknown role &#x27;admin&#x27;" in client.get(r["Location"]).content.decode()
    assert project.role_of(dave) == Role.VIEWER


def test_adding_a_member_from_the_settings_page_comes_back_to_it(client, project, alice, charlie):
    client.force_login(alice)
    url = reverse("project-members", args=[project.pk])
    r = client.post(url, {"username": "charlie", "role": "viewer", "back": "settings"})
    assert r["Location"] == reverse("project-settings", args=[project.pk])
    r = client.post(url, {"username": "nobody", "role": "viewer", "back": "settings"})
    assert r.status_code == 400 and "No active account is named" in r.content.decode()
    assert r.templates[0].name == "annotator/project_settings.html"


def test_a_member_of_another_project_is_404(client, project, alice):
    other = create_project(alice, name="Other", classes=["x", "y"])
    client.force_login(alice)
    r = client.post(reverse("member-remove", args=[project.pk, _member_pk(other, "alice")]))
    assert r.status_code == 404
    assert Membership.objects.filter(project=other).exists()


# --- who may post -----------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(7))
@pytest.mark.parametrize("who", ["bob", "dave"])
def test_annotators_and_viewers_cannot_change_anything(client, project, who, index, request):
    client.force_login(request.getfixturevalue(who))
    url, data = _posts(project)[index]
    assert client.post(url, data).status_code == 403
    _unchanged(project)


@pytest.mark.parametrize("index", range(7))
def test_it_rejects_outsider(client, project, charlie, index):
    client.force_login(charlie)
    url, data = _posts(project)[index]
    assert client.post(url, data).status_code == 404
    assert client.get(reverse("project-settings", args=[project.pk])).status_code == 404
    _unchanged(project)


@pytest.mark.parametrize("index", range(7))
def test_it_redirects_anonymous_to_login(client, project, index):
    url, data = _posts(project)[index]
    r = client.post(url, data)
    assert r.status_code == 302 and r["Location"].startswith(reverse("login"))
    r = client.get(reverse("project-settings", args=[project.pk]))
    assert r.status_code == 302 and r["Location"].startswith(reverse("login"))
    _unchanged(project)


def test_an_owner_who_leaves_goes_to_the_project_list(client, project, alice):
    add_member(project, "bob", Role.OWNER)
    client.force_login(alice)
    r = client.post(reverse("member-remove", args=[project.pk, _member_pk(project, "alice")]), HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and r["HX-Redirect"] == reverse("project-list")
    assert project.role_of(alice) is None


def test_an_owner_who_steps_down_sees_the_members_without_controls(client, project, alice):
    add_member(project, "bob", Role.OWNER)
    client.force_login(alice)
    url = reverse("member-role", args=[project.pk, _member_pk(project, "alice")])
    r = client.post(url, {"role": "viewer"}, HTTP_HX_REQUEST="true")
    body = r.content.decode()
    assert "alice is now viewer" in body and "Add member" not in body
