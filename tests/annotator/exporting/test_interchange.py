"""The fiftyone and labelstudio exports, checked against the layouts their tools document
(neither tool is installed: fiftyone is too heavy, and the Label Studio SDK would pull in
packages pinned differently here)."""
import io
import json
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from PIL import Image

from annotator.exporting import formats
from annotator.modelloop import predictions
from annotator.models import Annotation, Item, LabelClass, ModelVersion, TrainerState


@pytest.fixture(autouse=True)
def _fresh_predictions_cache():
    predictions._cache.clear()


def _answer(item, user, name, *, skipped=False, undone=False, duration_ms=None):
    Annotation.objects.create(
        item=item, annotator=user, skipped=skipped, undone=undone, duration_ms=duration_ms,
        label=None if skipped else LabelClass.objects.get(project=item.project, name=name),
        idempotency_key=f"x-{item.pk}-{user.pk}-{Annotation.objects.count()}",
    )


def _fake_model(project, probs):
    folder = f"{project.pk}/v1"
    base = Path(settings.ARTIFACTS_ROOT) / folder
    base.mkdir(parents=True)
    pool_index = np.array(sorted(Item.objects.filter(project=project).values_list("pool_index", flat=True)))
    np.save(base / "probs.npy", np.asarray(probs, dtype=np.float32))
    np.save(base / "pool_index.npy", pool_index)
    version = ModelVersion.objects.create(project=project, number=4, kind=ModelVersion.Kind.SLOW,
                                          classes=project.class_names(), artifact_dir=folder,
                                          pool_size=len(pool_index))
    TrainerState.objects.create(project=project, current_version=version)


def _zip(project, fmt, **options):
    data = b"".join(formats.build(project, fmt, **options).chunks)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    return archive


@pytest.fixture
def labeled(project, make_items, alice, bob):
    """0: zero (alice); 1: two (alice) and one (bob); 2: skipped by alice; 3: nothing."""
    items = make_items(4)
    _answer(items[0], alice, "zero", duration_ms=1500)
    _answer(items[1], alice, "two")
    _answer(items[1], bob, "one")
    _answer(items[2], alice, None, skipped=True)
    _answer(items[3], bob, "one", undone=True)
    return items


# --- FiftyOne -------------------------------------------------------------------------------


def test_the_fiftyone_zip_has_fiftyones_image_classification_layout(project, labeled):
    """docs.voxel51.com, FiftyOneImageClassificationDataset: data/<uuid>.<ext> and labels.json
    {"classes": [...], "labels": {"<uuid>": <target index>, ...}}, the uuid being the file's stem."""
    archive = _zip(project, "fiftyone")
    names = archive.namelist()
    doc = json.loads(archive.read("labels.json"))
    assert set(doc) == {"classes", "labels"}
    assert doc["classes"] == ["zero", "one", "two"]
    data_files = sorted(n for n in names if n.startswith("data/"))
    stems = {n.split("/")[1].rsplit(".", 1)[0]: n for n in data_files}
    assert set(doc["labels"]) == set(stems) == {str(labeled[0].pk), str(labeled[1].pk)}
    assert all(isinstance(t, int) and 0 <= t < len(doc["classes"]) for t in doc["labels"].values())
    assert doc["classes"][doc["labels"][str(labeled[0].pk)]] == "zero"
    assert doc["classes"][doc["labels"][str(labeled[1].pk)]] == "two"  # a tie goes to the earliest answer
    for name in data_files:
        Image.open(io.BytesIO(archive.read(name))).verify()
    assert set(names) - set(data_files) == {"labels.json", "export.json"}


def test_the_fiftyone_zip_takes_confident_guesses(project, labeled):
    _fake_model(project, [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.02, 0.02, 0.96], [0.3, 0.3, 0.4]])
    doc = json.loads(_zip(project, "fiftyone", with_predictions=True, min_confidence=0.95).read("labels.json"))
    assert doc["classes"][doc["labels"][str(labeled[2].pk)]] == "two"
    assert str(labeled[3].pk) not in doc["labels"]


# --- Label Studio ---------------------------------------------------------------------------


def _config_names(xml):
    """(Image name, value), (Choices name, toName, choice), [Choice values] from a labeling config."""
    view = ET.fromstring(xml)
    assert view.tag == "View"
    image = view.find("Image")
    choices = view.find("Choices")
    return ((image.get("name"), image.get("value")),
            (choices.get("name"), choices.get("toName"), choices.get("choice")),
            [c.get("value") for c in choices.findall("Choice")])


def test_the_labelstudio_zip_holds_one_task_per_item_in_label_studios_format(project, labeled):
    """labelstud.io/guide/task_format: a list of tasks with `data` (the key the config's
    `$image` names), `annotations` ({result: [{from_name, to_name, type, value}], was_cancelled})
    and `predictions` ({model_version, score, result})."""
    _fake_model(project, [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.02, 0.02, 0.96], [0.3, 0.3, 0.4]])
    archive = _zip(project, "labelstudio")
    (image_name, value), (choices_name, to_name, mode), values = _config_names(archive.read("label_config.xml"))
    assert (value, mode, values) == ("$image", "single", ["zero", "one", "two"])
    assert to_name == image_name
    tasks = json.loads(archive.read("tasks.json"))
    assert [t["data"]["item_id"] for t in tasks] == [item.pk for item in labeled]
    for task, item in zip(tasks, labeled):
        assert set(task) == {"data", "annotations", "predictions"}
        assert task["data"]["sha256"] == item.content_hash
        assert task["data"]["image"] == f"images/{item.pk}.png"
        Image.open(io.BytesIO(archive.read(task["data"]["image"]))).verify()
        for entry in task["annotations"] + task["predictions"]:
            for result in entry["result"]:
                assert (result["from_name"], result["to_name"], result["type"]) == (choices_name, image_name,
                                                                                   "choices")
                assert set(result["value"]["choices"]) <= set(values)
        [prediction] = task["predictions"]
        assert prediction["model_version"] == "v4"
        assert 0 <= prediction["score"] <= 1
    first, tie, skipped, undone = tasks
    assert [a["result"][0]["value"]["choices"] for a in first["annotations"]] == [["zero"]]
    assert first["annotations"][0]["lead_time"] == 1.5
    assert first["annotations"][0]["was_cancelled"] is False
    assert [a["result"][0]["value"]["choices"] for a in tie["annotations"]] == [["two"], ["one"]]
    assert skipped["annotations"] == [{"result": [], "was_cancelled": True, "ground_truth": False,
                                       "created_at": skipped["annotations"][0]["created_at"]}]
    assert undone["annotations"] == []
    assert (first["predictions"][0]["score"], first["predictions"][0]["result"][0]["value"]["choices"]) == (
        0.9, ["zero"])
    assert skipped["predictions"][0]["result"][0]["value"]["choices"] == ["two"]


def test_the_labelstudio_zip_without_a_model_has_no_predictions(client, project, labeled, alice):
    client.force_login(alice)
    r = client.get(f"/api/projects/{project.pk}/export/?format=labelstudio")
    assert r.status_code == 200
    assert r["Content-Disposition"] == 'attachment; filename="digits-labelstudio.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(r.streaming_content)))
    assert all(task["predictions"] == [] for task in json.loads(archive.read("tasks.json")))


def test_the_labeling_config_escapes_class_names(project, make_items, alice):
    LabelClass.objects.create(project=project, name='a "b" <c> & d', order=5)
    item = make_items(1)[0]
    _answer(item, alice, 'a "b" <c> & d')
    archive = _zip(project, "labelstudio")
    _image, _choices, values = _config_names(archive.read("label_config.xml"))
    assert values[-1] == 'a "b" <c> & d'
    [task] = json.loads(archive.read("tasks.json"))
    assert task["annotations"][0]["result"][0]["value"]["choices"] == ['a "b" <c> & d']


def test_a_missing_image_leaves_its_task_out(project, make_items, alice):
    items = make_items(2)
    Item.objects.filter(pk=items[0].pk).update(image="../outside.png")
    archive = _zip(project, "labelstudio")
    assert [t["data"]["item_id"] for t in json.loads(archive.read("tasks.json"))] == [items[1].pk]
    assert json.loads(archive.read("export.json"))["skipped_items"] == [items[0].pk]
