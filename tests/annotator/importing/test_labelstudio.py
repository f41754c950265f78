"""Importing labels from a Label Studio JSON export: matching tasks to images, the label of a
task, all-or-nothing refusals, the page and the API, and a round trip through our export."""
import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.access import Invalid
from annotator.exporting import formats
from annotator.importing.labelstudio import import_labelstudio
from annotator.models import Annotation, Item, LabelClass
from annotator.projects.changes import create_project


def _choice(*names, cancelled=False):
    result = [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": list(names)}}]
    return {"result": [] if cancelled else result, "was_cancelled": cancelled}


def _task(image=None, *annotations, sha256=None):
    data = {}
    if image is not None:
        data["image"] = image
    if sha256:
        data["sha256"] = sha256
    return {"data": data, "annotations": list(annotations)}


def _file(tasks, name="export.json"):
    return SimpleUploadedFile(name, json.dumps(tasks).encode(), content_type="application/json")


@pytest.fixture
def named(project, make_items):
    items = make_items(4)
    for item, name in zip(items, ["cat.png", "dog.png", "owl.png", "bee.png"]):
        item.original_name = name
        item.save()
    return items


def _labels(project):
    return dict(Annotation.objects.filter(item__project=project, undone=False, skipped=False)
                .values_list("item__original_name", "label__name"))


def test_it_matches_tasks_by_hash_url_name_upload_prefix_and_local_files(project, named, alice):
    tasks = [
        _task("https://bucket.example/any/name.jpg", _choice("zero"), sha256=named[0].content_hash),
        _task("https://example.com/img/dog.png?X-Amz-Signature=abc", _choice("one")),
        _task("/data/upload/3/1a2b3c4d-owl.png", _choice("two")),
        _task("/data/local-files/?d=photos%2Fbee.png", _choice("ZERO")),  # case of the class ignored
    ]
    report = import_labelstudio(project, alice, _file(tasks))
    assert report["applied"] and report["imported"] == 4
    assert _labels(project) == {"cat.png": "zero", "dog.png": "one", "owl.png": "two", "bee.png": "zero"}
    assert set(Annotation.objects.values_list("source", flat=True)) == {Annotation.Source.IMPORT}
    assert [row["item"] for row in report["rows"]] == [item.pk for item in named]
    again = import_labelstudio(project, alice, _file(tasks))  # twice adds nothing
    assert (again["applied"], again["imported"], again["already_labeled"]) == (True, 0, 4)
    assert Annotation.objects.count() == 4


def test_a_task_takes_the_majority_of_its_answered_annotations(project, named, alice):
    tasks = [
        _task("cat.png", _choice("one"), _choice("two"), _choice("two"), _choice(cancelled=True)),
        _task("dog.png", _choice("one"), _choice("two")),  # a tie: no label
        _task("owl.png", _choice(cancelled=True)),
        _task("bee.png"),  # not annotated yet
    ]
    report = import_labelstudio(project, alice, _file(tasks))
    assert report["applied"]
    assert [row["status"] for row in report["rows"]] == ["imported", "no_label", "no_label", "no_label"]
    assert "disagree with no majority (one: 1, two: 1)" in report["rows"][1]["reason"]
    assert _labels(project) == {"cat.png": "two"}


def test_nothing_is_imported_when_a_task_has_a_problem(project, named, alice):
    tasks = [
        _task("cat.png", _choice("zero")),
        _task("lion.png", _choice("one")),
        _task("dog.png", _choice("seven")),
        _task("owl.png", _choice("one", "two")),
        _task(None, _choice("one")),
        "not a task",
        _task("bee.png", {"result": [{"type": "choices", "value": {"choices": "one"}}]}),
    ]
    report = import_labelstudio(project, alice, _file(tasks))
    assert report["applied"] is False
    statuses = [(row["status"], row["reason"]) for row in report["rows"]]
    assert statuses[0] == ("ready", "Not imported: other tasks of the file have problems.")
    assert statuses[1][0] == "unknown_file"
    assert statuses[2][0] == "unknown_class" and "Unknown class 'seven'" in statuses[2][1]
    assert statuses[3] == ("bad_row", "An annotation chose several classes (one, two); this project takes one "
                                      "class per image.")
    assert statuses[4] == ("bad_row", "The task has neither data.image nor data.sha256.")
    assert statuses[5] == ("bad_row", "The task has no data object.")
    assert statuses[6][0] == "bad_row" and "value.choices" in statuses[6][1]
    assert Annotation.objects.count() == 0
    assert Item.objects.filter(label_count__gt=0).count() == 0


def test_two_images_with_the_same_name_are_an_unknown_file(project, named, make_items, alice):
    extra = make_items(1)[0]
    extra.original_name = "cat.png"
    extra.save()
    report = import_labelstudio(project, alice, _file([_task("cat.png", _choice("one"))]))
    assert report["applied"] is False
    assert "2 images in this project have this file name" in report["rows"][0]["reason"]


@pytest.mark.parametrize(
    "body, words",
    [
        (b"not json", "The file is not JSON"),
        (b'{"tasks": 1}', "not a list of tasks"),
        (b"[]", "holds no tasks"),
        ("\xff".encode("latin-1"), "The file is not JSON"),
    ],
)
def test_it_refuses_a_file_that_is_not_an_export(project, alice, body, words):
    with pytest.raises(Invalid, match=words):
        import_labelstudio(project, alice, SimpleUploadedFile("x.json", body))


def test_our_labelstudio_export_imports_into_a_project_with_the_same_images(project, make_items, alice, bob):
    items = make_items(3)
    for item, name in zip(items, ["zero", "two", None]):
        if name:
            Annotation.objects.create(item=item, annotator=bob, label=LabelClass.objects.get(project=project, name=name),
                                      idempotency_key=f"rt-{item.pk}")
    data = b"".join(formats.build(project, "labelstudio").chunks)
    tasks = zipfile.ZipFile(io.BytesIO(data)).read("tasks.json")
    other = create_project(alice, name="Copy", classes=["zero", "one", "two"])
    copies = make_items(3, target=other)  # the same pixels, so the same content hashes
    report = import_labelstudio(other, alice, SimpleUploadedFile("tasks.json", tasks))
    assert report["applied"] and report["imported"] == 2 and report["no_label"] == 1
    got = dict(Annotation.objects.filter(item__project=other).values_list("item_id", "label__name"))
    assert got == {copies[0].pk: "zero", copies[1].pk: "two"}


# --- API and page ---------------------------------------------------------------------------


def test_the_api_answers_the_report_or_400_when_nothing_was_imported(client, project, named, alice):
    client.force_login(alice)
    url = f"/api/projects/{project.pk}/labels/import-labelstudio/"
    r = client.post(url, {"file": _file([_task("cat.png", _choice("one")), _task("lion.png", _choice("one"))])})
    assert r.status_code == 400
    body = r.json()
    assert body["applied"] is False and body["unknown_file"] == 1 and body["ready"] == 1
    assert body["detail"].startswith("1 of the 2 tasks have problems, so nothing was imported.")
    r = client.post(url, {"file": _file([_task("cat.png", _choice("one"))])})
    assert r.status_code == 200
    assert (r.json()["applied"], r.json()["imported"]) == (True, 1)
    r = client.post(url, {"file": SimpleUploadedFile("x.json", b"nope")})
    assert r.status_code == 400 and "not JSON" in r.json()["detail"]
    assert client.post(url, {}).status_code == 400


def test_the_page_shows_the_problems(client, project, named, alice):
    client.force_login(alice)
    r = client.post(f"/projects/{project.pk}/labels/import-labelstudio/",
                    {"file": _file([_task("lion.png", _choice("one"))])}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    html = r.content.decode()
    assert "Nothing was imported" in html and "lion.png" in html and "No image in this project" in html
    r = client.post(f"/projects/{project.pk}/labels/import-labelstudio/", {"file": _file([_task("cat.png",
                                                                                                _choice("one"))])})
    assert r.status_code == 200 and "<strong>1</strong> imported" in r.content.decode()


def test_it_rejects_outsider_and_annotator(client, project, named, bob, charlie):
    for user, code in ((charlie, 404), (bob, 403)):
        client.force_login(user)
        for url in (f"/api/projects/{project.pk}/labels/import-labelstudio/",
                    f"/projects/{project.pk}/labels/import-labelstudio/"):
            assert client.post(url, {"file": _file([_task("cat.png", _choice("one"))])}).status_code == code
    assert Annotation.objects.count() == 0
