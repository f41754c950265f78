"""GET|PATCH /api/projects/{id}/settings/: settings and the class list."""
import pytest

from annotator.labeling.answers import submit_annotation
from annotator.labeling.corrections import delete_annotation
from annotator.labeling.leasing import lease_next
from annotator.models import Item, LabelClass, Project
from annotator.projects.changes import SETTINGS_FIELDS, create_project


def _url(project):
    return f"/api/projects/{project.pk}/settings/"


def _classes(project):
    return [(c.name, c.hotkey) for c in Project.objects.get(pk=project.pk).ordered_classes()]


def _ids(project):
    return {c.name: c.pk for c in project.ordered_classes()}


def _label(project, user, name, key):
    lease = lease_next(project, user)
    return submit_annotation(project, user, item_id=lease.item_id, label=name, idempotency_key=key)


@pytest.mark.parametrize("who", ["alice", "bob", "dave"])
def test_any_member_reads_the_settings(project, api, who, request):
    r = api(request.getfixturevalue(who)).get(_url(project))
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in SETTINGS_FIELDS} == {
        "name": "Digits", "strategy": "auto", "query_batch_size": 10, "audit_fraction": 0.0, "annotations_per_item": 1,
        "review_fraction": 0.0,
    }
    assert [(c["name"], c["hotkey"], c["labels"], c["removable"]) for c in body["classes"]] == [
        ("zero", "1", 0, True), ("one", "2", 0, True), ("two", "3", 0, True),
    ]


def test_it_counts_labels_and_marks_used_classes(project, api, bob, make_items):
    make_items(2)
    _label(project, bob, "one", "k1")
    classes = api(bob).get(_url(project)).json()["classes"]
    assert [(c["name"], c["labels"], c["removable"]) for c in classes] == [
        ("zero", 0, True), ("one", 1, False), ("two", 0, True),
    ]


def test_owner_changes_settings(project, api, alice):
    body = {"name": " Digits v2 ", "strategy": "bald", "query_batch_size": 25, "audit_fraction": 0.25,
            "annotations_per_item": 3}
    r = api(alice).patch(_url(project), body, format="json")
    assert r.status_code == 200
    assert r.json()["name"] == "Digits v2"
    project.refresh_from_db()
    assert (project.name, project.strategy, project.query_batch_size, project.audit_fraction,
            project.annotations_per_item) == ("Digits v2", "bald", 25, 0.25, 3)


def test_a_partial_patch_changes_only_what_it_sends(project, api, alice):
    assert api(alice).patch(_url(project), {"strategy": "margin"}, format="json").status_code == 200
    project.refresh_from_db()
    assert (project.name, project.strategy, project.query_batch_size) == ("Digits", "margin", 10)


def test_answers_per_item_re_decides_which_items_are_done(project, api, alice, bob, make_items):
    make_items(3)
    item = _label(project, bob, "one", "k1").annotation.item
    assert Item.objects.get(pk=item.pk).done
    api(alice).patch(_url(project), {"annotations_per_item": 2}, format="json")
    assert not Item.objects.get(pk=item.pk).done
    api(alice).patch(_url(project), {"annotations_per_item": 1}, format="json")
    assert Item.objects.get(pk=item.pk).done


@pytest.mark.parametrize(
    "body, field",
    [
        ({"query_batch_size": 0}, "query_batch_size"),
        ({"query_batch_size": 1001}, "query_batch_size"),
        ({"query_batch_size": "many"}, "query_batch_size"),
        ({"audit_fraction": 1.5}, "audit_fraction"),
        ({"audit_fraction": -0.1}, "audit_fraction"),
        ({"annotations_per_item": 0}, "annotations_per_item"),
        ({"annotations_per_item": 21}, "annotations_per_item"),
        ({"strategy": "psychic"}, "strategy"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"classes": "cat,dog"}, "classes"),
        ({"classes": [{"name": "only"}]}, "classes"),
        ({"classes": [{"name": "a"}, {"name": "b" * 101}]}, "classes"),
        ({"classes": [{"name": "a"}, {"id": "x", "name": "b"}]}, "classes"),
    ],
)
def test_it_validates_every_field(project, api, alice, body, field):
    r = api(alice).patch(_url(project), body, format="json")
    assert r.status_code == 400
    assert field in r.json()
    assert Project.objects.get(pk=project.pk).query_batch_size == 10
    assert _classes(project) == [("zero", "1"), ("one", "2"), ("two", "3")]


def test_it_refuses_unknown_fields_and_empty_patches(project, api, alice):
    r = api(alice).patch(_url(project), {"slug": "mine", "strategy": "bald"}, format="json")
    assert r.status_code == 400
    assert "Unknown field: slug" in r.json()["non_field_errors"][0]
    r = api(alice).patch(_url(project), {}, format="json")
    assert r.status_code == 400
    assert "Send at least one of" in r.json()["non_field_errors"][0]
    assert Project.objects.get(pk=project.pk).strategy == "auto"


def test_it_renames_reorders_and_adds_classes_at_once(project, api, alice):
    ids = _ids(project)
    body = {"classes": [{"id": ids["two"], "name": "deux"}, {"id": ids["zero"], "name": "zero"}, {"name": "three"}]}
    r = api(alice).patch(_url(project), body, format="json")
    assert r.status_code == 200
    assert [c["name"] for c in r.json()["classes"]] == ["deux", "zero", "three"]
    assert _classes(project) == [("deux", "1"), ("zero", "2"), ("three", "3")]
    assert LabelClass.objects.get(pk=ids["two"]).name == "deux"
    assert not LabelClass.objects.filter(pk=ids["one"]).exists()


def test_it_swaps_two_names(project, api, alice):
    ids = _ids(project)
    body = {"classes": [{"id": ids["zero"], "name": "one"}, {"id": ids["one"], "name": "zero"}, {"id": ids["two"], "name": "two"}]}
    assert api(alice).patch(_url(project), body, format="json").status_code == 200
    assert LabelClass.objects.get(pk=ids["zero"]).name == "one"


def test_renaming_a_used_class_keeps_its_labels(project, api, alice, bob, make_items):
    make_items(2)
    answer = _label(project, bob, "one", "k1").annotation
    ids = _ids(project)
    body = {"classes": [{"id": ids["zero"], "name": "zero"}, {"id": ids["one"], "name": "uno"}, {"id": ids["two"], "name": "two"}]}
    assert api(alice).patch(_url(project), body, format="json").status_code == 200
    answer.refresh_from_db()
    assert answer.label.name == "uno"


def test_it_refuses_to_remove_a_used_class_and_changes_nothing(project, api, alice, bob, make_items):
    make_items(2)
    _label(project, bob, "one", "k1")
    ids = _ids(project)
    body = {"strategy": "bald", "classes": [{"id": ids["zero"], "name": "zero"}, {"id": ids["two"], "name": "two"}]}
    r = api(alice).patch(_url(project), body, format="json")
    assert r.status_code == 400
    assert "'one' cannot be removed: 1 label use it" in r.json()["detail"]
    assert _classes(project) == [("zero", "1"), ("one", "2"), ("two", "3")]
    assert Project.objects.get(pk=project.pk).strategy == "auto"


def test_a_class_in_the_history_of_deleted_answers_stays(project, api, alice, bob, make_items):
    make_items(2)
    answer = _label(project, bob, "one", "k1").annotation
    delete_annotation(project, answer.pk, by=alice)
    ids = _ids(project)
    body = {"classes": [{"id": ids["zero"], "name": "zero"}, {"id": ids["two"], "name": "two"}]}
    r = api(alice).patch(_url(project), body, format="json")
    assert r.status_code == 400
    assert "history of 1 deleted answer" in r.json()["detail"]


@pytest.mark.parametrize(
    "classes, message",
    [
        ([{"name": "a"}, {"name": "a"}], "must be unique"),
        ([{"name": "a"}, {"name": "  "}], "may not be blank"),
        ([{"id": 999999, "name": "a"}, {"name": "b"}], "not a class of this project"),
    ],
)
def test_it_refuses_bad_class_lists_with_a_reason(project, api, alice, classes, message):
    r = api(alice).patch(_url(project), {"classes": classes}, format="json")
    assert r.status_code == 400
    assert message in str(r.json())
    assert _classes(project) == [("zero", "1"), ("one", "2"), ("two", "3")]


def test_it_refuses_a_class_of_another_project(project, api, alice):
    other = create_project(alice, name="Other", classes=["x", "y"])
    ids = _ids(project)
    stranger = other.ordered_classes()[0].pk
    body = {"classes": [{"id": ids["zero"], "name": "zero"}, {"id": stranger, "name": "x"}]}
    r = api(alice).patch(_url(project), body, format="json")
    assert r.status_code == 400
    assert "is not a class of this project" in r.json()["detail"] and "(zero)" in r.json()["detail"]
    assert other.class_names() == ["x", "y"]


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_annotators_and_viewers_cannot_change_settings(project, api, who, request):
    r = api(request.getfixturevalue(who)).patch(_url(project), {"strategy": "bald"}, format="json")
    assert r.status_code == 403
    assert Project.objects.get(pk=project.pk).strategy == "auto"


def test_it_rejects_outsider(project, api, charlie):
    assert api(charlie).get(_url(project)).status_code == 404
    assert api(charlie).patch(_url(project), {"strategy": "bald"}, format="json").status_code == 404
    assert Project.objects.get(pk=project.pk).strategy == "auto"


def test_it_rejects_anonymous(project, api):
    assert api(None).get(_url(project)).status_code == 401
    assert api(None).patch(_url(project), {"strategy": "bald"}, format="json").status_code == 401
