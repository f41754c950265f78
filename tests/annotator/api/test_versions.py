"""GET /api/projects/{id}/versions/ and .../versions/{version_id}/: the model versions, read
only, with the accuracy of each version's guesses on audit items."""
import pytest

from annotator.models import Annotation, ModelVersion, TrainerState
from annotator.projects.changes import create_project


def _url(project, version=None):
    base = f"/api/projects/{project.pk}/versions/"
    return base if version is None else f"{base}{version.pk if hasattr(version, 'pk') else version}/"


@pytest.fixture
def versions(project):
    v1 = ModelVersion.objects.create(
        project=project, number=1, kind="pretrain", labels_used=0, pool_size=10, classes=project.class_names(),
        device="cpu", durations={"pretrain": 12.5}, metrics={"loss": 0.7},
    )
    failed = ModelVersion.objects.create(
        project=project, kind="slow", status="failed", labels_used=3, error="CUDA out of memory. Lower the batch size."
    )
    v2 = ModelVersion.objects.create(project=project, number=2, kind="fast", labels_used=4, pool_size=10, device="cpu")
    TrainerState.objects.create(project=project, current_version=v2)
    return v1, failed, v2


def _audit(project, user, item, version, guess, answer, key):
    Annotation.objects.create(
        item=item, annotator=user, label=project.classes.get(name=answer), idempotency_key=key, is_audit=True,
        suggestion={"label": guess, "confidence": 0.9, "top": []}, model_version=version,
    )


def test_it_lists_versions_newest_first_with_audit_accuracy(project, api, alice, bob, dave, versions, make_items):
    v1, failed, v2 = versions
    items = make_items(3)
    _audit(project, bob, items[0], v1, "one", "one", "a1")
    _audit(project, bob, items[1], v1, "two", "one", "a2")
    _audit(project, alice, items[2], v2, "zero", "zero", "a3")
    r = api(dave).get(_url(project))
    assert r.status_code == 200
    rows = r.json()["results"]
    assert [row["id"] for row in rows] == [v2.pk, failed.pk, v1.pk]
    assert set(rows[0]) == {
        "id", "number", "kind", "status", "labels_used", "pool_size", "generation", "classes", "strategy", "device",
        "durations", "metrics", "error", "created_at", "current", "audit_accuracy",
    }
    assert [row["current"] for row in rows] == [True, False, False]
    assert rows[2]["audit_accuracy"]["n"] == 2 and rows[2]["audit_accuracy"]["estimate"] == 0.5
    assert rows[0]["audit_accuracy"]["correct"] == 1
    assert rows[1]["audit_accuracy"] == {"n": 0, "correct": 0, "estimate": None, "low": None, "high": None}
    assert (rows[1]["number"], rows[1]["status"], rows[1]["error"]) == (None, "failed", failed.error)
    assert (rows[2]["durations"], rows[2]["metrics"], rows[2]["device"]) == ({"pretrain": 12.5}, {"loss": 0.7}, "cpu")


def test_it_shows_one_version(project, api, bob, versions):
    v1 = versions[0]
    r = api(bob).get(_url(project, v1))
    assert r.status_code == 200
    assert (r.json()["number"], r.json()["kind"], r.json()["current"]) == (1, "pretrain", False)


def test_it_paginates(project, api, alice, versions):
    r = api(alice).get(_url(project), {"page_size": 1, "page": 2})
    assert r.json()["count"] == 3 and [row["id"] for row in r.json()["results"]] == [versions[1].pk]


def test_a_version_of_another_project_is_404(project, api, alice):
    other = create_project(alice, name="Other", classes=["x", "y"])
    foreign = ModelVersion.objects.create(project=other, number=1, kind="fast")
    r = api(alice).get(_url(project, foreign))
    assert r.status_code == 404
    assert "not in this project" in r.json()["detail"]


def test_versions_are_read_only(project, api, alice, versions):
    client = api(alice)
    assert client.post(_url(project), {}, format="json").status_code == 405
    assert client.delete(_url(project, versions[0])).status_code == 405
    assert ModelVersion.objects.count() == 3


def test_it_rejects_outsider(project, api, charlie, versions):
    assert api(charlie).get(_url(project)).status_code == 404
    assert api(charlie).get(_url(project, versions[0])).status_code == 404


def test_it_rejects_anonymous(project, api, versions):
    assert api(None).get(_url(project)).status_code == 401
    assert api(None).get(_url(project, versions[0])).status_code == 401
