"""GET /api/projects/{id}/annotations/ and GET|PATCH|DELETE .../annotations/{annotation_id}/:
owners list, correct and delete answers; every change is kept in the answer's history."""
import pytest

from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.models import Annotation, AnnotationChange, Item
from annotator.projects.changes import create_project


def _list(client, project, **params):
    return client.get(f"/api/projects/{project.pk}/annotations/", params)


def _url(project, annotation):
    return f"/api/projects/{project.pk}/annotations/{getattr(annotation, 'pk', annotation)}/"


def _answer(project, user, item, key, label=None):
    return submit_annotation(
        project, user, item_id=item.pk, label=label, skip=label is None, idempotency_key=key
    ).annotation


@pytest.fixture
def answers(project, alice, bob, make_items):
    """bob: one on item 0, a skip on item 1; alice: two on item 2; an import of zero on item 3."""
    items = make_items(4)
    Annotation.objects.create(item=items[3], annotator=alice, label=project.classes.get(name="zero"),
                              source="import", idempotency_key=f"import:{items[3].pk}")
    Item.objects.filter(pk=items[3].pk).update(label_count=1, done=True)
    return [
        _answer(project, bob, items[0], "k1", "one"),
        _answer(project, bob, items[1], "k2"),
        _answer(project, alice, items[2], "k3", "two"),
        Annotation.objects.get(source="import"),
    ]


def _ids(response):
    return [row["id"] for row in response.json()["results"]]


def test_any_member_lists_answers_newest_first(project, api, dave, answers):
    r = _list(api(dave), project)
    assert r.status_code == 200
    assert r.json()["count"] == 4
    assert _ids(r) == [answers[2].pk, answers[1].pk, answers[0].pk, answers[3].pk]
    row = next(x for x in r.json()["results"] if x["id"] == answers[0].pk)
    assert {k: row[k] for k in ("item", "label", "skipped", "annotator", "source", "undone")} == {
        "item": answers[0].item_id, "label": "one", "skipped": False, "annotator": "bob", "source": "human",
        "undone": False,
    }


def test_it_filters_by_annotator_class_source_and_item(project, api, alice, answers):
    client = api(alice)
    assert set(_ids(_list(client, project, annotator="bob"))) == {answers[0].pk, answers[1].pk}
    assert _ids(_list(client, project, label="two")) == [answers[2].pk]
    assert _ids(_list(client, project, source="import")) == [answers[3].pk]
    assert _ids(_list(client, project, item=answers[1].item_id)) == [answers[1].pk]
    assert _ids(_list(client, project, annotator="bob", label="two")) == []


@pytest.mark.parametrize(
    "params, message",
    [
        ({"label": "seven"}, "This project's classes are: zero, one, two."),
        ({"annotator": "mallory"}, "No member of this project, past or present, is named 'mallory'"),
        ({"source": "robot"}, "not a valid choice"),
        ({"item": "x"}, "valid integer"),
        ({"include_undone": "maybe"}, "valid boolean"),
    ],
)
def test_it_validates_the_filters(project, api, alice, answers, params, message):
    r = _list(api(alice), project, **params)
    assert r.status_code == 400
    assert message in str(r.json())


def test_owner_corrects_a_label_and_the_history_keeps_the_old_one(project, api, alice, answers):
    r = api(alice).patch(_url(project, answers[0]), {"label": "two"}, format="json")
    assert r.status_code == 200
    body = r.json()
    assert body["label"] == "two"
    assert [(c["action"], c["old_label"], c["new_label"], c["changed_by"]) for c in body["changes"]] == [
        ("correct", "one", "two", "alice"),
    ]
    answers[0].refresh_from_db()
    assert answers[0].label.name == "two" and answers[0].annotator.username == "bob"
    item = Item.objects.get(pk=answers[0].item_id)
    assert (item.label_count, item.done) == (1, True)


def test_correcting_to_the_same_class_records_nothing(project, api, alice, answers):
    r = api(alice).patch(_url(project, answers[0]), {"label": "one"}, format="json")
    assert r.status_code == 200 and r.json()["changes"] == []
    assert not AnnotationChange.objects.exists()


def test_it_refuses_an_unknown_class_with_the_list(project, api, alice, answers):
    r = api(alice).patch(_url(project, answers[0]), {"label": "seven"}, format="json")
    assert r.status_code == 400
    assert r.json()["detail"] == "Unknown class 'seven'. This project's classes are: zero, one, two."
    r = api(alice).patch(_url(project, answers[0]), {}, format="json")
    assert r.status_code == 400 and "label" in r.json()
    assert Annotation.objects.get(pk=answers[0].pk).label.name == "one"


def test_a_skip_has_no_class_to_correct(project, api, alice, answers):
    r = api(alice).patch(_url(project, answers[1]), {"label": "one"}, format="json")
    assert r.status_code == 400
    assert "skip" in r.json()["detail"]


def test_owner_deletes_an_answer_which_stays_in_the_history(project, api, alice, bob, answers):
    r = api(alice).delete(_url(project, answers[0]))
    assert r.status_code == 204
    answers[0].refresh_from_db()
    assert answers[0].undone
    item = Item.objects.get(pk=answers[0].item_id)
    assert (item.label_count, item.done) == (0, False)
    detail = api(alice).get(_url(project, answers[0])).json()
    assert detail["undone"] is True
    assert [(c["action"], c["old_label"], c["new_label"]) for c in detail["changes"]] == [("delete", "one", "")]
    assert answers[0].pk not in _ids(_list(api(alice), project))
    assert answers[0].pk in _ids(_list(api(alice), project, include_undone="true"))
    # The item goes back to the queue, and bob may answer it again.
    assert lease_next(project, bob).item_id == item.pk
    assert _answer(project, bob, item, "k9", "two").label.name == "two"


def test_deleting_a_skip_leaves_the_counts(project, api, alice, answers):
    assert api(alice).delete(_url(project, answers[1])).status_code == 204
    assert Item.objects.get(pk=answers[1].item_id).label_count == 0
    assert AnnotationChange.objects.get().old_label == ""


def test_a_deleted_answer_cannot_be_changed_again(project, api, alice, answers):
    client = api(alice)
    assert client.delete(_url(project, answers[0])).status_code == 204
    r = client.delete(_url(project, answers[0]))
    assert r.status_code == 409 and "deleted" in r.json()["detail"]
    assert client.patch(_url(project, answers[0]), {"label": "two"}, format="json").status_code == 409
    assert AnnotationChange.objects.count() == 1
    assert Item.objects.get(pk=answers[0].item_id).label_count == 0


def test_an_answer_of_another_project_is_404(project, api, alice, make_items):
    other = create_project(alice, name="Other", classes=["x", "y"])
    [item] = make_items(1, target=other)
    foreign = _answer(other, alice, item, "f1", "x")
    client = api(alice)
    assert client.get(_url(project, foreign)).status_code == 404
    assert client.patch(_url(project, foreign), {"label": "one"}, format="json").status_code == 404
    assert client.delete(_url(project, foreign)).status_code == 404
    assert client.get(_url(project, 999999)).status_code == 404
    assert not Annotation.objects.get(pk=foreign.pk).undone


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_annotators_and_viewers_read_but_cannot_change(project, api, answers, who, request):
    client = api(request.getfixturevalue(who))
    assert client.get(_url(project, answers[0])).status_code == 200
    assert client.patch(_url(project, answers[0]), {"label": "two"}, format="json").status_code == 403
    assert client.delete(_url(project, answers[0])).status_code == 403
    answers[0].refresh_from_db()
    assert (answers[0].label.name, answers[0].undone) == ("one", False)


def test_it_rejects_outsider(project, api, charlie, answers):
    client = api(charlie)
    assert _list(client, project).status_code == 404
    assert client.get(_url(project, answers[0])).status_code == 404
    assert client.patch(_url(project, answers[0]), {"label": "two"}, format="json").status_code == 404
    assert client.delete(_url(project, answers[0])).status_code == 404
    assert not Annotation.objects.get(pk=answers[0].pk).undone


def test_it_rejects_anonymous(project, api, answers):
    client = api(None)
    assert _list(client, project).status_code == 401
    assert client.get(_url(project, answers[0])).status_code == 401
    assert client.patch(_url(project, answers[0]), {"label": "two"}, format="json").status_code == 401
    assert client.delete(_url(project, answers[0])).status_code == 401
