"""The "none of these" class: an optional exclusive class of single-label projects, last in
the list with the key N, a real class for the model and the exports; multi-label projects
refuse it. The keys it and "unsure" reserve are never handed to other classes."""
import pytest

from annotator.access import Invalid
from annotator.labeling.answers import submit_annotation
from annotator.models import NONE_HOTKEY, RESERVED_HOTKEYS, UNSURE_HOTKEY, LabelClass, default_hotkeys
from annotator.projects.changes import change_project, create_project
from annotator.projects.classes import add_class, move_class, remove_class, set_none_class


def _classes(project):
    return [(c.name, c.hotkey, c.is_none) for c in project.ordered_classes()]


def test_a_project_starts_with_it_last_with_its_key(alice):
    project = create_project(alice, name="P", classes=["cat", "dog"], none_class=" none ")
    assert _classes(project) == [("cat", "1", False), ("dog", "2", False), ("none", NONE_HOTKEY, True)]


@pytest.mark.parametrize(("classes", "none", "message"), [
    (["cat", "dog"], "cat", "appears twice"), (["cat"], "none", "at least two"), (["cat", "dog"], "", "empty")])
def test_creation_refuses_a_clashing_or_empty_name(alice, classes, none, message):
    with pytest.raises(Invalid, match=message):
        create_project(alice, name="P", classes=classes, none_class=none)
    assert not LabelClass.objects.exists()


def test_multi_label_projects_refuse_it_with_a_sentence(alice):
    with pytest.raises(Invalid, match="no class checked already means none applies"):
        create_project(alice, name="T", classes=["cat", "dog"], multi_label=True, none_class="none")
    tags = create_project(alice, name="T", classes=["cat", "dog"], multi_label=True)
    with pytest.raises(Invalid, match="needs no"):
        set_none_class(tags, "none")


def test_it_stays_last_when_classes_are_added_or_moved(alice):
    project = create_project(alice, name="P", classes=["cat", "dog"], none_class="none")
    add_class(project, "bird")
    none = project.classes.get(is_none=True)
    move_class(project, none.pk, -2)
    move_class(project, project.classes.get(name="bird").pk, 5)
    assert _classes(project) == [("cat", "1", False), ("dog", "2", False), ("bird", "3", False),
                                 ("none", NONE_HOTKEY, True)]


def test_settings_turn_it_on_rename_and_off(alice, project):
    set_none_class(project, "nothing")
    assert _classes(project)[-1] == ("nothing", NONE_HOTKEY, True)
    change_project(project, none_class="background")
    assert _classes(project)[-1] == ("background", NONE_HOTKEY, True)
    change_project(project, none_class=None)
    assert [c[2] for c in _classes(project)] == [False, False, False]
    set_none_class(project, "none")
    remove_class(project, project.classes.get(is_none=True).pk)
    assert not project.classes.filter(is_none=True).exists()


def test_a_used_none_class_cannot_be_turned_off(project, bob, make_items):
    set_none_class(project, "none")
    item = make_items(1)[0]
    submit_annotation(project, bob, item_id=item.pk, label="none", idempotency_key="k")
    with pytest.raises(Invalid, match="cannot be removed"):
        set_none_class(project, None)


def test_reserved_keys_are_never_handed_to_classes():
    assert {UNSURE_HOTKEY, NONE_HOTKEY} <= RESERVED_HOTKEYS
    keys = default_hotkeys([f"class {i}" for i in range(40)])
    assert UNSURE_HOTKEY not in keys and NONE_HOTKEY not in keys and len(set(keys) - {""}) == len(keys) - keys.count("")
    assert default_hotkeys(["l", "m", "k"]) == ["1", "2", "3"]  # "m" is reserved: names are not their keys


def test_api_creates_it_and_settings_show_and_change_it(alice, api):
    client = api(alice)
    r = client.post("/api/projects/", {"name": "P", "classes": ["a", "b"], "none_class": "none",
                                       "review_fraction": 0.25}, format="json")
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    body = client.get(f"/api/projects/{pk}/settings/").json()
    assert body["none_class"] == "none" and body["review_fraction"] == 0.25
    assert [(c["name"], c["hotkey"], c["is_none"]) for c in body["classes"]] == [
        ("a", "1", False), ("b", "2", False), ("none", "n", True)]
    r = client.patch(f"/api/projects/{pk}/settings/", {"none_class": None, "review_fraction": 0.5}, format="json")
    assert r.status_code == 200 and r.json()["none_class"] is None and r.json()["review_fraction"] == 0.5
    r = client.patch(f"/api/projects/{pk}/settings/", {"review_fraction": 1.5}, format="json")
    assert r.status_code == 400 and "review_fraction" in r.json()
    r = client.post("/api/projects/", {"name": "T", "classes": ["a", "b"], "multi_label": True, "none_class": "none"},
                    format="json")
    assert r.status_code == 400 and "needs no" in r.json()["detail"]


def test_it_is_a_real_class_for_the_model_and_the_exports(project, alice, bob, api, make_items):
    import numpy as np

    from annotator.modelloop.arrays import label_arrays, ordered_class_ids
    from annotator.models import Item

    set_none_class(project, "none")
    item = make_items(1)[0]
    submit_annotation(project, bob, item_id=item.pk, label="none", idempotency_key="k")
    ids, names = ordered_class_ids(project)
    labels, _soft = label_arrays(project, np.array([item.pool_index]), ids)
    assert names[labels[0]] == "none"
    r = api(alice).get(f"/api/projects/{project.pk}/export/", {"format": "csv"})
    rows = b"".join(r.streaming_content).decode().splitlines()
    assert r.status_code == 200 and rows[1].split(",")[3] == "none"
    assert Item.objects.get().label_count == 1
