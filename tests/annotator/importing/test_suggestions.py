"""Other tools' guesses from a `file,class,score` CSV: stored on the items all or nothing,
shown as the guess (with their source) while the model has none, never counted as the
model's; the page, the API and who may import."""
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.access import Invalid
from annotator.importing.suggestions import import_suggestions
from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.modelloop import predictions
from annotator.modelloop.status import audit_accuracy, audit_answers
from annotator.models import Item, ModelVersion, TrainerState


@pytest.fixture(autouse=True)
def _fresh_predictions_cache():
    predictions._cache.clear()


def _csv(text, name="resnet-guesses.csv"):
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


@pytest.fixture
def named(project, make_items):
    items = make_items(3)
    for item, name in zip(items, ["cat.png", "dog.png", "owl.png"]):
        item.original_name = name
        item.save()
    return items


def _stored(project):
    return dict(Item.objects.filter(project=project).values_list("original_name", "external_suggestion"))


def test_it_stores_each_guess_on_its_item(project, named):
    report = import_suggestions(project, _csv(f"file,class,score\ncat.png,ONE,0.71234\n{named[1].content_hash},two,1\n"))
    assert (report["applied"], report["stored"], report["source"]) == (True, 2, "resnet-guesses.csv")
    assert _stored(project) == {
        "cat.png": {"label": "one", "score": 0.7123, "source": "resnet-guesses.csv"},
        "dog.png": {"label": "two", "score": 1.0, "source": "resnet-guesses.csv"},
        "owl.png": None,
    }
    again = import_suggestions(project, _csv("class,score,file\nzero,0.2,cat.png\n"), source="  CLIP  ")
    assert again["applied"]
    assert _stored(project)["cat.png"] == {"label": "zero", "score": 0.2, "source": "CLIP"}  # replaced
    assert _stored(project)["dog.png"]["source"] == "resnet-guesses.csv"  # left alone


def test_nothing_is_stored_when_a_row_has_a_problem(project, named):
    text = ("file,class,score\ncat.png,one,0.5\nlion.png,one,0.5\ndog.png,seven,0.5\nowl.png,one,1.5\n"
            "owl.png,one,nan\ncat.png,two,0.1\n,one,0.3\nowl.png,two\n")
    report = import_suggestions(project, _csv(text))
    assert report["applied"] is False
    outcomes = [(row["line"], row["status"]) for row in report["rows"]]
    assert outcomes == [(2, "ready"), (3, "unknown_file"), (4, "unknown_class"), (5, "bad_row"), (6, "bad_row"),
                        (7, "bad_row"), (8, "bad_row"), (9, "bad_row")]
    reasons = [row["reason"] for row in report["rows"]]
    assert reasons[3] == "The score must be a number from 0 to 1, not '1.5'."
    assert reasons[5] == "Line 2 already gives this image a suggestion."
    assert reasons[7] == "The row has fewer columns than the header."
    assert (report["ready"], report["unknown_file"], report["unknown_class"], report["bad_row"]) == (1, 1, 1, 5)
    assert all(value is None for value in _stored(project).values())


@pytest.mark.parametrize(
    "text, words",
    [
        ("file,class\ncat.png,one\n", "header file,class,score"),
        ("", "The CSV is empty"),
        ("file,class,score\n", "no rows"),
    ],
)
def test_it_refuses_a_file_it_cannot_use(project, named, text, words):
    with pytest.raises(Invalid, match=words):
        import_suggestions(project, _csv(text))
    with pytest.raises(Invalid, match="longer than 100 characters"):
        import_suggestions(project, _csv("file,class,score\ncat.png,one,1\n"), source="x" * 101)


# --- where the guess shows ------------------------------------------------------------------


def _model(project, probs):
    folder = f"{project.pk}/v1"
    base = Path(settings.ARTIFACTS_ROOT) / folder
    base.mkdir(parents=True)
    pool_index = np.array(sorted(Item.objects.filter(project=project).values_list("pool_index", flat=True)))
    np.save(base / "probs.npy", np.asarray(probs, dtype=np.float32))
    np.save(base / "pool_index.npy", pool_index[: len(probs)])
    version = ModelVersion.objects.create(project=project, number=1, kind=ModelVersion.Kind.FAST,
                                          classes=project.class_names(), artifact_dir=folder)
    TrainerState.objects.create(project=project, current_version=version)
    return version


def test_the_lease_shows_the_imported_guess_while_the_model_has_none(client, project, named, bob):
    import_suggestions(project, _csv("file,class,score\ncat.png,two,0.4\ndog.png,one,0.9\n"), source="CLIP")
    version = _model(project, [[0.1, 0.8, 0.1]])  # the model has scored cat.png (pool 0) only
    client.force_login(bob)
    seen = {}
    for n in range(3):
        r = client.post(f"/api/projects/{project.pk}/next/", {}, content_type="application/json")
        lease = r.json()
        seen[lease["id"]] = lease["suggestion"]
        submit_annotation(project, bob, item_id=lease["id"], label="zero", idempotency_key=f"s{n}")
    assert seen[named[0].pk]["label"] == "one" and "source" not in seen[named[0].pk]  # the model's
    assert seen[named[1].pk] == {"label": "one", "confidence": 0.9, "top": [{"label": "one", "confidence": 0.9}],
                                 "source": "CLIP"}
    assert seen[named[2].pk] is None
    from annotator.models import Annotation

    answers = {a.item_id: a for a in Annotation.objects.filter(item__project=project)}
    assert answers[named[0].pk].model_version_id == version.pk
    assert answers[named[1].pk].model_version_id is None  # an imported guess is not the model's


def test_an_imported_guess_is_never_counted_as_the_models_on_audit_items(project, named, bob):
    import_suggestions(project, _csv("file,class,score\ncat.png,zero,0.9\ndog.png,zero,0.9\nowl.png,zero,0.9\n"))
    project.audit_fraction = 1.0
    project.save()
    for n in range(3):
        lease = lease_next(project, bob)
        assert lease.is_audit and lease.suggestion["source"] == "resnet-guesses.csv"
        submit_annotation(project, bob, item_id=lease.item_id, label="zero", idempotency_key=f"a{n}")
    assert audit_accuracy(project)["n"] == 0
    assert audit_answers(project) == []


def test_a_guess_of_a_removed_class_is_not_shown(project, named, bob):
    import_suggestions(project, _csv("file,class,score\ncat.png,two,0.4\ndog.png,two,0.4\nowl.png,two,0.4\n"))
    project.classes.filter(name="two").update(name="deux")
    assert lease_next(project, bob).suggestion is None


def test_the_labeling_page_names_the_source(client, project, named, bob):
    import_suggestions(project, _csv("file,class,score\ncat.png,two,0.4\ndog.png,two,0.4\nowl.png,two,0.4\n"),
                       source="CLIP zero-shot")
    client.force_login(bob)
    html = client.get(f"/projects/{project.pk}/label/").content.decode()
    assert '<span id="guess-kind">Guess from CLIP zero-shot</span>: <strong id="guess-label">two</strong>' in html


def test_the_items_api_lists_the_imported_guess(client, project, named, alice):
    import_suggestions(project, _csv("file,class,score\ncat.png,two,0.4\n"))
    client.force_login(alice)
    r = client.get(f"/api/projects/{project.pk}/items/")
    assert r.status_code == 200
    by_id = {item["id"]: item for item in r.json()["results"]}
    assert by_id[named[1].pk]["external_suggestion"] is None
    assert by_id[named[0].pk]["external_suggestion"] == {"label": "two", "score": 0.4, "source": "resnet-guesses.csv"}


# --- API and page ---------------------------------------------------------------------------


def test_the_api_stores_or_answers_400_with_the_rows(client, project, named, alice):
    client.force_login(alice)
    url = f"/api/projects/{project.pk}/suggestions/import/"
    r = client.post(url, {"file": _csv("file,class,score\ncat.png,one,2\n")})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("1 of the 1 rows have problems, so nothing was imported.")
    assert r.json()["rows"][0]["status"] == "bad_row"
    r = client.post(url, {"file": _csv("file,class,score\ncat.png,one,0.5\n"), "source": "mine"})
    assert r.status_code == 200 and r.json()["stored"] == 1 and r.json()["source"] == "mine"
    r = client.post(url, {"file": _csv("file,class,score\ncat.png,one,0.5\n"), "source": "x" * 101})
    assert r.status_code == 400 and "source" in r.json()


def test_the_page_reports_the_import(client, project, named, alice):
    client.force_login(alice)
    url = f"/projects/{project.pk}/suggestions/import/"
    r = client.post(url, {"file": _csv("file,class,score\nlion.png,one,0.5\n")}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    html = r.content.decode()
    assert "Nothing was stored" in html and "lion.png" in html
    r = client.post(url, {"file": _csv("file,class,score\ncat.png,one,0.5\n"), "source": "vit"},
                    HTTP_HX_REQUEST="true")
    assert "<strong>1</strong> stored as “vit”" in r.content.decode()


def test_it_rejects_outsider_and_annotator(client, project, named, bob, charlie):
    for user, code in ((charlie, 404), (bob, 403)):
        client.force_login(user)
        for url in (f"/api/projects/{project.pk}/suggestions/import/", f"/projects/{project.pk}/suggestions/import/"):
            assert client.post(url, {"file": _csv("file,class,score\ncat.png,one,0.5\n")}).status_code == code
    assert all(value is None for value in _stored(project).values())
