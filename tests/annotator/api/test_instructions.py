"""GET|PATCH /api/projects/{id}/instructions/: the labeling instructions, sanitised HTML and
source, read by members and changed by owners."""
import pytest

from annotator.models import Project
from annotator.projects.changes import create_project
from annotator.projects.instructions import MAX_DESCRIPTION_CHARS, MAX_EXAMPLES, MAX_INSTRUCTIONS_CHARS


def _url(project):
    return f"/api/projects/{project.pk}/instructions/"


def _class_id(project, name):
    return project.classes.get(name=name).pk


def test_an_owner_writes_instructions_and_members_read_them(project, api, alice, bob, dave, make_items):
    first, second = make_items(2)
    body = {
        "markdown": "# Digits\n\nLabel the **largest** digit. <script>alert(1)</script> [guide](javascript:alert(1))",
        "classes": [{"id": _class_id(project, "two"), "description": "A *curved* top.", "examples": [second.pk, first.pk]}],
    }
    r = api(alice).patch(_url(project), body, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["version"] == 1
    for user in (alice, bob, dave):
        got = api(user).get(_url(project)).json()
        assert got["markdown"] == body["markdown"]
        assert got["html"].startswith("<h1>Digits</h1>\n<p>Label the <strong>largest</strong> digit.")
        assert "<script" not in got["html"] and "&lt;script&gt;" in got["html"]  # shown as text, never run
        assert "href=\"javascript" not in got["html"]  # the link stays text
        assert got["has_content"] is True
        two = next(c for c in got["classes"] if c["name"] == "two")
        assert (two["description"], two["description_html"]) == ("A *curved* top.", "<p>A <em>curved</em> top.</p>\n")
        assert [e["id"] for e in two["examples"]] == [first.pk, second.pk]
        assert two["examples"][0]["image_url"] == f"http://testserver/projects/{project.pk}/items/{first.pk}/image/"
        assert [c["examples"] for c in got["classes"] if c["name"] != "two"] == [[], []]


def test_only_what_is_sent_changes_and_no_change_keeps_the_version(project, api, alice, make_items):
    [item] = make_items(1)
    zero = _class_id(project, "zero")
    api(alice).patch(_url(project), {"markdown": "Be careful.", "classes": [{"id": zero, "examples": [item.pk]}]},
                     format="json")
    r = api(alice).patch(_url(project), {"classes": [{"id": zero, "description": "Round."}]}, format="json")
    got = r.json()
    assert (got["version"], got["markdown"]) == (2, "Be careful.")
    assert [e["id"] for e in got["classes"][0]["examples"]] == [item.pk]
    again = api(alice).patch(_url(project), {"markdown": "Be careful."}, format="json").json()
    assert again["version"] == 2


@pytest.mark.parametrize(
    "body, message",
    [
        ({}, "Send at least one of: markdown, classes."),
        ({"markdown": "x", "colour": "red"}, "Unknown field: colour."),
        ({"markdown": "x" * (MAX_INSTRUCTIONS_CHARS + 1)}, f"no more than {MAX_INSTRUCTIONS_CHARS} characters"),
        ({"classes": [{"id": "CLASS", "description": "x" * (MAX_DESCRIPTION_CHARS + 1)}]}, "no more than"),
        ({"classes": [{"id": "CLASS", "examples": list(range(1, MAX_EXAMPLES + 2))}]}, f"no more than {MAX_EXAMPLES}"),
        ({"classes": [{"id": "CLASS", "examples": ["ITEM_ELSEWHERE"]}]}, "is not an image of this project"),
        ({"classes": [{"id": "CLASS_ELSEWHERE", "description": "x"}]}, "is not a class of this project"),
        ({"classes": [{"description": "x"}]}, "required"),
        ({"classes": [{"id": "CLASS", "description": "a"}, {"id": "CLASS", "description": "b"}]}, "only once"),
    ],
)
def test_bad_bodies_are_refused_and_change_nothing(project, api, alice, make_items, body, message):
    other = create_project(alice, name="Other", classes=["a", "b"])
    [elsewhere] = make_items(1, target=other)
    values = {"CLASS": _class_id(project, "one"), "CLASS_ELSEWHERE": other.classes.first().pk,
              "ITEM_ELSEWHERE": elsewhere.pk}
    for entry in body.get("classes", []):
        entry.update({k: values.get(v, v) for k, v in entry.items() if isinstance(v, str)})
        if "examples" in entry:
            entry["examples"] = [values.get(v, v) for v in entry["examples"]]
    r = api(alice).patch(_url(project), body, format="json")
    assert r.status_code == 400
    assert message in r.content.decode()
    fresh = Project.objects.get(pk=project.pk)
    assert (fresh.instructions, fresh.instructions_version) == ("", 0)
    assert not any(c.description or c.examples.exists() for c in fresh.classes.all())


def test_an_annotator_cannot_change_them(project, api, bob):
    r = api(bob).patch(_url(project), {"markdown": "mine"}, format="json")
    assert r.status_code == 403
    assert Project.objects.get(pk=project.pk).instructions == ""


def test_it_rejects_outsider(project, api, charlie):
    assert api(charlie).get(_url(project)).status_code == 404
    assert api(charlie).patch(_url(project), {"markdown": "x"}, format="json").status_code == 404
    assert Project.objects.get(pk=project.pk).instructions == ""
