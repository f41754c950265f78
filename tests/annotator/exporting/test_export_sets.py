"""Exports of a multi-label project: csv and jsonl carry each item's `labels` list (and the
model's suggested set), the jsonl loads in Hugging Face `datasets` with a
Sequence(ClassLabel) feature, and single-label-only layouts (imagefolder) are refused with the
reason, on the API, the page and the dashboard's export list."""
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.urls import reverse

from annotator.exporting import formats
from annotator.exporting.registry import REGISTRY, ExportError
from annotator.labeling.answers import submit_annotation
from annotator.modelloop import predictions
from annotator.models import Item, ModelVersion, TrainerState


@pytest.fixture(autouse=True)
def _fresh_predictions_cache():
    predictions._cache.clear()


@pytest.fixture
def answered(tags, make_items, alice, bob):
    """Item 0 {cat, dog} (bob); 1 none applies (bob); 2 {car} (bob) and {car, dog} (alice);
    3 skipped; 4 unanswered."""
    tags.annotations_per_item = 2
    tags.save()
    items = make_items(5, target=tags)
    for n, (item, user, chosen) in enumerate([(0, bob, ["dog", "cat"]), (1, bob, []), (2, bob, ["car"]),
                                              (2, alice, ["car", "dog"])]):
        submit_annotation(tags, user, item_id=items[item].pk, labels=chosen, idempotency_key=f"k{n}")
    submit_annotation(tags, bob, item_id=items[3].pk, skip=True, idempotency_key="s")
    return items


def _model(project, probs):
    folder = f"{project.pk}/v1"
    base = Path(settings.ARTIFACTS_ROOT) / folder
    base.mkdir(parents=True)
    np.save(base / "probs.npy", np.asarray(probs, dtype=np.float32))
    np.save(base / "pool_index.npy", np.array(sorted(Item.objects.filter(project=project).values_list("pool_index",
                                                                                                      flat=True))))
    version = ModelVersion.objects.create(project=project, number=1, kind="fast", classes=project.class_names(),
                                          artifact_dir=folder, pool_size=len(probs), metrics={"multi_label": True})
    TrainerState.objects.create(project=project, current_version=version)


def _export(project, fmt, **options):
    return b"".join(formats.build(project, fmt, **options).chunks)


def test_jsonl_carries_each_items_set(tags, answered):
    rows = [json.loads(line) for line in _export(tags, "jsonl").decode().splitlines()]
    assert [r["item_id"] for r in rows] == [answered[i].pk for i in range(3)]
    assert [r["labels"] for r in rows] == [["cat", "dog"], [], ["dog", "car"]]  # class order; half the votes count
    assert "label" not in rows[0] and rows[2]["soft_label"] == {"dog": 0.5, "car": 1.0}
    assert rows[0]["soft_label"] is None and rows[0]["model_labels"] is None


def test_csv_has_a_labels_column_of_json_lists(tags, answered):
    rows = list(csv.DictReader(io.StringIO(_export(tags, "csv").decode())))
    assert "labels" in rows[0] and "label" not in rows[0] and "model_labels" in rows[0]
    assert [json.loads(r["labels"]) for r in rows] == [["cat", "dog"], [], ["dog", "car"]]


def test_the_models_sets_and_confident_guesses(tags, answered):
    _model(tags, [[0.9, 0.8, 0.1], [0.1, 0.2, 0.3], [0.2, 0.6, 0.9], [0.5, 0.5, 0.5], [0.99, 0.02, 0.97]])
    rows = [json.loads(line) for line in _export(tags, "jsonl", with_predictions=True, min_confidence=0.9).splitlines()]
    assert rows[0]["model_labels"] == ["cat", "dog"]
    assert rows[0]["model_confidence"] == pytest.approx(0.9 * 0.8 * 0.9, abs=1e-4)
    guessed = [r for r in rows if r["source"] == "model"]
    # item 4's set {cat, car} is 0.99 * 0.98 * 0.97 sure; item 3's (all at 0.5) is not
    assert [(r["item_id"], r["labels"]) for r in guessed] == [(answered[4].pk, ["cat", "car"])]


def test_the_jsonl_loads_in_hugging_face_with_a_sequence_of_class_labels(tags, answered, tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "tags.jsonl"
    path.write_bytes(_export(tags, "jsonl"))
    feature = datasets.Sequence(datasets.ClassLabel(names=tags.class_names()))
    loaded = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    loaded = loaded.cast_column("labels", feature)
    assert loaded.features["labels"].feature.names == ["cat", "dog", "car"]
    assert loaded["labels"] == [[0, 1], [], [1, 2]]


def test_imagefolder_is_refused_with_the_reason(tags, answered, client, api, alice, dave):
    assert REGISTRY["imagefolder"].single_label_only and not REGISTRY["jsonl"].single_label_only
    with pytest.raises(ExportError, match="one class per image"):
        formats.build(tags, "imagefolder")
    reply = api(alice).get(f"/api/projects/{tags.pk}/export/", {"format": "imagefolder"})
    assert reply.status_code == 400 and "multi-label" in reply.json()["detail"]
    client.force_login(dave)  # viewers export too; the page says why, as plain text
    reply = client.get(reverse("project-export", args=[tags.pk]), {"format": "imagefolder"})
    assert reply.status_code == 400 and "csv or jsonl" in reply.content.decode()
    page = client.get(reverse("project-dashboard", args=[tags.pk])).content.decode()
    refused = page.split('data-format="imagefolder"')[1].split("</li>")[0]
    assert "multi-label" in refused and "?format=imagefolder" not in page
    assert '<option value="imagefolder">' not in page and '<option value="jsonl">' in page


def test_a_single_label_project_still_exports_imagefolder(project, make_items, bob):
    item = make_items(1)[0]
    submit_annotation(project, bob, item_id=item.pk, label="one", idempotency_key="k")
    assert formats.build(project, "imagefolder").total == 1


def test_an_outsider_cannot_export(tags, answered, client, charlie):
    client.force_login(charlie)
    assert client.get(reverse("project-export", args=[tags.pk]), {"format": "jsonl"}).status_code == 404
