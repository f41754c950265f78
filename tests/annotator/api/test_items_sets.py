"""The items API and the imports of a multi-label project: each live answer's set, the model's
set filter, and label sources that cannot give a set (a file,class CSV, class folders)."""
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from annotator.labeling.answers import submit_annotation
from annotator.modelloop import predictions
from annotator.models import Annotation, Item, ModelVersion, TrainerState
from tests.conftest import png_bytes


@pytest.fixture(autouse=True)
def _fresh_predictions_cache():
    predictions._cache.clear()


def test_items_show_each_answers_set_and_filter_by_the_models_set(tags, make_items, bob, dave, api):
    items = make_items(3, target=tags)
    submit_annotation(tags, bob, item_id=items[0].pk, labels=["dog", "cat"], idempotency_key="a")
    submit_annotation(tags, bob, item_id=items[1].pk, labels=[], idempotency_key="b")
    folder = f"{tags.pk}/v1"
    base = Path(settings.ARTIFACTS_ROOT) / folder
    base.mkdir(parents=True)
    np.save(base / "pool_index.npy", np.array([i.pool_index for i in items]))
    np.save(base / "probs.npy", np.array([[0.9, 0.8, 0.1], [0.1, 0.1, 0.1], [0.6, 0.1, 0.7]], np.float32))
    version = ModelVersion.objects.create(project=tags, number=1, kind="fast", classes=tags.class_names(),
                                          artifact_dir=folder, pool_size=3, metrics={"multi_label": True})
    TrainerState.objects.create(project=tags, current_version=version)
    url = f"/api/projects/{tags.pk}/items/"
    body = api(dave).get(url).json()["results"]
    assert [[(x["label"], x["labels"]) for x in row["labels"]] for row in body] == [
        [(None, ["cat", "dog"])], [(None, [])], []]
    assert body[2]["prediction"]["labels"] == ["cat", "car"]
    assert [r["id"] for r in api(dave).get(url, {"predicted": "cat"}).json()["results"]] == [items[0].pk, items[2].pk]
    sure = api(dave).get(url, {"min_confidence": 0.7}).json()["results"]  # the whole set: 0.648, 0.729, 0.378
    assert [r["id"] for r in sure] == [items[1].pk]
    assert api(dave).get(url, {"predicted": "car", "min_confidence": 0.65}).json()["results"][0]["id"] == items[2].pk


def test_a_label_csv_is_refused_with_a_sentence(tags, alice, api):
    upload = io.BytesIO(b"file,class\na.png,cat\n")
    upload.name = "labels.csv"
    reply = api(alice).post(f"/api/projects/{tags.pk}/labels/import/", {"file": upload}, format="multipart")
    assert reply.status_code == 400 and "multi-label" in reply.json()["detail"]


def test_class_folders_do_not_pre_label_a_multi_label_project(tags, alice, api):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("cat/a.png", png_bytes(1))
        z.writestr("dog/b.png", png_bytes(2))
    archive.seek(0)
    archive.name = "pets.zip"
    reply = api(alice).post(f"/api/projects/{tags.pk}/images/", {"file": [archive]}, format="multipart")
    assert reply.status_code in (200, 201), reply.content
    assert Item.objects.filter(project=tags).count() == 2
    assert not Annotation.objects.exists()


@pytest.mark.parametrize(("who", "status"), [("charlie", 404)])
def test_an_outsider_sees_no_items(tags, api, request, who, status):
    assert api(request.getfixturevalue(who)).get(f"/api/projects/{tags.pk}/items/").status_code == status
