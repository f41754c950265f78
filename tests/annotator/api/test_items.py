"""GET /api/projects/{id}/items/: the pool, filtered by state and by the current model's guess."""
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from annotator.labeling.answers import submit_annotation
from annotator.modelloop import predictions
from annotator.models import ModelVersion, TrainerState


def publish(project, probs, pool_index, number=1):
    """A model version whose probabilities the web process reads (what the trainer writes)."""
    folder = f"test/{project.pk}/v{number}"
    path = Path(settings.ARTIFACTS_ROOT) / folder
    path.mkdir(parents=True)
    np.save(path / predictions.PROBS_FILE, np.asarray(probs, dtype=np.float32))
    np.save(path / predictions.POOL_INDEX_FILE, np.asarray(pool_index, dtype=np.int64))
    version = ModelVersion.objects.create(
        project=project, number=number, kind="fast", pool_size=len(pool_index), classes=project.class_names(),
        artifact_dir=folder,
    )
    TrainerState.objects.update_or_create(project=project, defaults={"current_version": version})
    predictions._cache.clear()  # ids are reused between tests
    return version


def _get(client, project, **params):
    return client.get(f"/api/projects/{project.pk}/items/", params)


def _ids(response):
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def pool(project, make_items):
    """Five items; the model has scored the first four (zero, one, one, two)."""
    items = make_items(5)
    publish(project, [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.4, 0.3], [0.1, 0.1, 0.8]], [0, 1, 2, 3])
    return items


def test_it_lists_items_with_labels_and_guesses(project, api, bob, pool):
    pool[1].original_name = "b.png"
    pool[1].save()
    submit_annotation(project, bob, item_id=pool[1].pk, label="one", idempotency_key="k")
    r = _get(api(bob), project)
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 5 and _ids(r) == [i.pk for i in pool]
    row = body["results"][1]
    assert set(row) == {"id", "file_name", "image_url", "width", "height", "label_count", "done", "labels", "prediction",
                        "external_suggestion"}
    assert (row["file_name"], row["width"], row["height"]) == ("b.png", 32, 24)
    assert row["image_url"] == f"http://testserver/projects/{project.pk}/items/{pool[1].pk}/image/"
    assert [(x["label"], x["annotator"], x["source"]) for x in row["labels"]] == [("one", "bob", "human")]
    assert row["prediction"]["label"] == "one" and row["prediction"]["confidence"] == pytest.approx(0.7)
    assert body["results"][4]["prediction"] is None  # imported after the version


def test_guesses_are_null_before_a_model_exists(project, api, bob, make_items):
    make_items(2)
    assert [row["prediction"] for row in _get(api(bob), project).json()["results"]] == [None, None]


def test_it_filters_by_state(project, api, alice, bob, pool):
    submit_annotation(project, bob, item_id=pool[0].pk, label="one", idempotency_key="k1")
    submit_annotation(project, bob, item_id=pool[1].pk, skip=True, idempotency_key="k2")
    client = api(alice)
    assert _ids(_get(client, project, state="labeled")) == [pool[0].pk]
    assert _ids(_get(client, project, state="done")) == [pool[0].pk]
    assert _ids(_get(client, project, state="skipped")) == [pool[1].pk]
    assert _ids(_get(client, project, state="open")) == [i.pk for i in pool[1:]]


def test_it_filters_by_predicted_class_and_confidence(project, api, dave, pool):
    client = api(dave)
    assert _ids(_get(client, project, predicted="one")) == [pool[1].pk, pool[2].pk]
    assert _ids(_get(client, project, predicted="one", min_confidence=0.5)) == [pool[1].pk]
    assert _ids(_get(client, project, max_confidence=0.5)) == [pool[2].pk]
    assert _ids(_get(client, project, min_confidence=0.75, max_confidence=1)) == [pool[0].pk, pool[3].pk]
    assert _get(client, project, predicted="ONE").json()["count"] == 2


def test_prediction_and_state_filters_combine(project, api, alice, bob, pool):
    submit_annotation(project, bob, item_id=pool[2].pk, label="two", idempotency_key="k1")
    assert _ids(_get(api(alice), project, predicted="one", state="open")) == [pool[1].pk]


def test_prediction_filters_match_nothing_without_a_model(project, api, alice, make_items):
    make_items(2)
    r = _get(api(alice), project, predicted="one")
    assert r.status_code == 200 and r.json()["count"] == 0


def test_it_paginates(project, api, alice, pool):
    client = api(alice)
    first = _get(client, project, page_size=2).json()
    assert (first["count"], len(first["results"])) == (5, 2)
    assert first["next"].endswith("page=2&page_size=2")
    third = _get(client, project, page_size=2, page=3)
    assert _ids(third) == [pool[4].pk]
    assert _ids(_get(client, project, predicted="one", page_size=1, page=2)) == [pool[2].pk]
    assert _get(client, project, page=9).status_code == 404


@pytest.mark.parametrize(
    "params, field",
    [
        ({"state": "pending"}, "state"),
        ({"min_confidence": "high"}, "min_confidence"),
        ({"min_confidence": "1.5"}, "min_confidence"),
        ({"max_confidence": "-0.1"}, "max_confidence"),
        ({"max_confidence": "nan"}, "max_confidence"),
        ({"min_confidence": "0.8", "max_confidence": "0.2"}, "non_field_errors"),
    ],
)
def test_it_validates_the_filters(project, api, alice, pool, params, field):
    r = _get(api(alice), project, **params)
    assert r.status_code == 400
    assert field in r.json()


def test_an_unknown_class_lists_the_classes(project, api, alice, pool):
    r = _get(api(alice), project, predicted="seven")
    assert r.status_code == 400
    assert r.json()["detail"] == "Unknown class 'seven'. This project's classes are: zero, one, two."


def test_it_rejects_outsider(project, api, charlie, pool):
    assert _get(api(charlie), project).status_code == 404


def test_it_rejects_anonymous(project, api, pool):
    assert _get(api(None), project).status_code == 401
