"""Exports: CSV / JSON Lines / ImageFolder zip / model / embeddings, from the page, the API
and `manage.py export`; who may export; refusals; files outside MEDIA_ROOT."""
import csv
import io
import json
import os
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.test import AsyncClient

from annotator.accounts.tokens import issue_token
from annotator.exporting import formats, imagefolder, labels, zipstream
from annotator.modelloop import predictions
from annotator.modelloop.steering import reset_model
from annotator.models import Annotation, Item, LabelClass, ModelVersion, TrainerState
from tests.conftest import png_bytes


@pytest.fixture(autouse=True)
def _fresh_predictions_cache():
    # Cached per ModelVersion pk, which the rolled-back test database hands out again.
    predictions._cache.clear()


def _answer(item, user, label, *, source=Annotation.Source.HUMAN, undone=False, skipped=False):
    label_obj = None if skipped else LabelClass.objects.get(project=item.project, name=label)
    answer = Annotation.objects.create(
        item=item, annotator=user, label=label_obj, skipped=skipped, source=source, undone=undone,
        idempotency_key=f"{item.pk}-{user.pk}-{label}-{Annotation.objects.count()}",
    )
    if not skipped and not undone:
        Item.objects.filter(pk=item.pk).update(label_count=item.label_count + 1)
        item.refresh_from_db()
    return answer


@pytest.fixture
def labeled(project, make_items, alice, bob, dave):
    """Four items: 0 labeled zero (alice); 1 a tie one (alice, first) / two (bob);
    2 unlabeled (a skip by alice); 3 two by import, after an undone zero by bob."""
    items = make_items(4)
    items[0].original_name = "a.png"
    items[0].save()
    _answer(items[0], alice, "zero")
    _answer(items[1], alice, "one")
    _answer(items[1], bob, "two")
    _answer(items[2], alice, None, skipped=True)
    _answer(items[3], bob, "zero", undone=True)
    _answer(items[3], alice, "two", source=Annotation.Source.IMPORT)
    return items


def _fake_model(project, probs, *, checkpoint=True, embeddings=None):
    """A model version whose files the trainer would have written: probs.npy (N, C) and
    pool_index.npy (N,), plus learner.pt and embeddings.npy for a checkpoint version."""
    folder = f"{project.pk}/v1"
    base = Path(settings.ARTIFACTS_ROOT) / folder
    base.mkdir(parents=True)
    pool_index = np.array(sorted(Item.objects.filter(project=project).values_list("pool_index", flat=True)))
    np.save(base / "probs.npy", np.asarray(probs, dtype=np.float32))
    np.save(base / "pool_index.npy", pool_index)
    if checkpoint:
        (base / "learner.pt").write_bytes(b"checkpoint: config, weights, class names" * 1000)
        emb = embeddings if embeddings is not None else np.arange(len(pool_index) * 4, dtype=np.float32).reshape(-1, 4)
        np.save(base / "embeddings.npy", emb)
    version = ModelVersion.objects.create(
        project=project, number=1, kind=ModelVersion.Kind.SLOW, classes=project.class_names(), artifact_dir=folder,
        checkpoint=f"{folder}/learner.pt" if checkpoint else "", pool_size=len(pool_index),
    )
    TrainerState.objects.create(project=project, current_version=version)
    return version


PROBS = [
    [0.90, 0.05, 0.05],  # item 0 (labeled zero)
    [0.10, 0.80, 0.10],  # item 1 (labeled one)
    [0.05, 0.05, 0.90],  # item 2: unlabeled, a sure guess of two (float32 0.9 rounds to 0.9)
    [0.30, 0.30, 0.40],  # item 3 (labeled two)
]


def _body(response):
    return b"".join(response.streaming_content)


def _csv_rows(data):
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def _get(client, user, url):
    client.force_login(user)
    return client.get(url)


def _export(project, fmt, **options):
    return b"".join(formats.build(project, fmt, **options).chunks)


# --- CSV and JSON Lines -----------------------------------------------------------------------


def test_it_exports_one_csv_row_per_labeled_item(client, project, labeled, alice):
    r = _get(client, alice, f"/api/projects/{project.pk}/export/?format=csv")
    assert r.status_code == 200
    assert r.streaming
    assert r["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="digits-labels.csv"' == r["Content-Disposition"]
    rows = _csv_rows(_body(r))
    assert list(rows[0]) == labels.COLUMNS
    by_item = {int(row["item_id"]): row for row in rows}
    assert set(by_item) == {labeled[0].pk, labeled[1].pk, labeled[3].pk}
    first, tie, imported = by_item[labeled[0].pk], by_item[labeled[1].pk], by_item[labeled[3].pk]
    assert (first["label"], first["label_source"], first["annotators"]) == ("zero", "human", "alice")
    assert first["soft_label"] == ""
    assert first["original_name"] == "a.png"
    assert first["file"] == labeled[0].image.name
    assert (tie["label"], tie["annotators"]) == ("one", "alice;bob")  # a tie goes to the earliest answer
    assert json.loads(tie["soft_label"]) == {"one": 0.5, "two": 0.5}
    latest = Annotation.objects.filter(item=labeled[1]).latest("created_at").created_at
    assert tie["labeled_at"] == latest.isoformat()
    assert (imported["label"], imported["label_source"], imported["annotators"]) == ("two", "import", "alice")
    assert all(row["model_label"] == "" and row["model_confidence"] == "" for row in rows)


def test_it_takes_the_majority_over_the_first_answer(project, make_items, alice, bob, dave):
    item = make_items(1)[0]
    _answer(item, alice, "one")
    _answer(item, bob, "two")
    _answer(item, dave, "two")
    [row] = _csv_rows(_export(project, "csv"))
    assert row["label"] == "two"
    assert json.loads(row["soft_label"]) == {"one": 0.3333, "two": 0.6667}


def test_it_exports_json_lines(client, project, labeled, alice):
    r = _get(client, alice, f"/api/projects/{project.pk}/export/?format=jsonl")
    assert r.status_code == 200
    lines = [json.loads(line) for line in _body(r).decode().splitlines()]
    assert [line["item_id"] for line in lines] == [labeled[0].pk, labeled[1].pk, labeled[3].pk]
    tie = lines[1]
    assert tie["annotators"] == ["alice", "bob"]
    assert tie["soft_label"] == {"one": 0.5, "two": 0.5}
    assert tie["source"] == "human"
    assert lines[0]["soft_label"] is None and lines[0]["model_label"] is None


def test_it_adds_confident_model_guesses_only_when_asked(client, project, labeled, alice):
    _fake_model(project, PROBS)
    url = f"/api/projects/{project.pk}/export/?format=csv"
    rows = _csv_rows(_body(_get(client, alice, url)))
    assert [row["label_source"] for row in rows] == ["human", "human", "import"]
    assert (rows[0]["model_label"], rows[0]["model_confidence"], rows[0]["model_version"]) == ("zero", "0.9", "1")

    rows = _csv_rows(_body(client.get(url + "&predictions=1&min_confidence=0.9")))
    assert [(int(r["item_id"]), r["label_source"]) for r in rows] == [
        (labeled[0].pk, "human"), (labeled[1].pk, "human"), (labeled[2].pk, "model"), (labeled[3].pk, "import"),
    ]
    guessed = rows[2]
    assert (guessed["label"], guessed["model_confidence"], guessed["annotators"]) == ("two", "0.9", "")

    rows = _csv_rows(_body(client.get(url + "&predictions=1&min_confidence=0.95")))
    assert "model" not in {row["label_source"] for row in rows}


def test_the_command_takes_the_same_prediction_options(project, labeled, tmp_path):
    _fake_model(project, PROBS)
    out = tmp_path / "labels.jsonl"
    call_command("export", project.slug, "--format", "jsonl", "-o", str(out), "--with-predictions",
                 "--min-confidence", "0.9", stdout=io.StringIO(), stderr=io.StringIO())
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["source"] for line in lines] == ["human", "human", "model", "import"]


def test_it_escapes_formulas_in_csv_cells(project, alice, make_items):
    LabelClass.objects.create(project=project, name="=cmd()", order=9)
    LabelClass.objects.create(project=project, name="-1", order=10)
    items = make_items(2)
    items[0].original_name = "+x"
    items[0].save()
    _answer(items[0], alice, "=cmd()")
    _answer(items[1], alice, "-1")
    rows = _csv_rows(_export(project, "csv"))
    assert (rows[0]["label"], rows[0]["original_name"]) == ("'=cmd()", "'+x")
    assert rows[1]["label"] == "-1"  # a plain number runs nothing
    for value in ("@SUM(A1)", "\tx", "\rx", "-2+3+cmd|' /C calc'!A0"):
        assert labels.csv_safe(value) == "'" + value
    assert labels.csv_safe("cat") == "cat"
    # JSON Lines keeps the names as they are.
    assert json.loads(_export(project, "jsonl").splitlines()[0])["label"] == "=cmd()"


# --- the ImageFolder zip ----------------------------------------------------------------------


def _unzip(data, tmp_path):
    root = tmp_path / "unzipped"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        archive.extractall(root)
    return root


def _db_counts(project):
    rows = _csv_rows(_export(project, "csv"))
    return Counter(row["label"] for row in rows)


def test_the_imagefolder_zip_loads_in_torchvision(client, project, make_items, alice, bob, tmp_path):
    items = make_items(9)
    for i, item in enumerate(items[:8]):
        _answer(item, alice, ["zero", "one", "two"][i % 3] if i < 6 else "one")
    r = _get(client, alice, f"/api/projects/{project.pk}/export/?format=imagefolder")
    assert r.status_code == 200
    assert r["Content-Type"] == "application/zip"
    chunks = list(r.streaming_content)
    assert len(chunks) > 8  # piece by piece, not one blob
    root = _unzip(b"".join(chunks), tmp_path)

    from torchvision.datasets import ImageFolder

    dataset = ImageFolder(root)
    expected = _db_counts(project)
    assert dataset.classes == sorted(expected)
    assert Counter(dataset.classes[target] for _path, target in dataset.samples) == expected
    image, _ = dataset[0]
    assert image.size == (32, 24)

    with (root / "metadata.csv").open(newline="") as fh:
        meta = list(csv.DictReader(fh))
    assert len(meta) == 8
    assert all((root / row["file_name"]).is_file() for row in meta)
    assert {row["file_name"].split("/")[0] for row in meta} == set(expected)
    assert all(row["file_name"].split("/")[0] == row["label"] for row in meta)
    summary = json.loads((root / "export.json").read_text())
    assert [c["name"] for c in summary["classes"]] == ["zero", "one", "two"]
    assert summary["skipped_items"] == []


def test_the_imagefolder_zip_loads_in_hugging_face_datasets(project, make_items, alice, tmp_path):
    datasets = pytest.importorskip("datasets")
    items = make_items(6)
    for i, item in enumerate(items):
        _answer(item, alice, ["zero", "one"][i % 2])
    root = _unzip(_export(project, "imagefolder"), tmp_path)
    loaded = datasets.load_dataset("imagefolder", data_dir=str(root), split="train", cache_dir=str(tmp_path / "hf"))
    assert Counter(loaded["label"]) == {"zero": 3, "one": 3}


def test_it_names_class_folders_safely(project, make_items, alice, tmp_path):
    names = ["../x", "a/b", "a_b", "test", "Test", ".hidden", "__init__", "CON", "=sum()", "val-1", "latest",
             "metadata.csv"]
    for i, name in enumerate(names):
        LabelClass.objects.create(project=project, name=name, order=10 + i)
    items = make_items(len(names))
    for item, name in zip(items, names):
        _answer(item, alice, name)
    data = _export(project, "imagefolder")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = archive.namelist()
    folders = {entry.split("/")[0] for entry in entries if "/" in entry}
    assert all(".." not in entry and not entry.startswith("/") for entry in entries)
    assert all(entry.count("/") == 1 for entry in entries if "/" in entry)
    assert len(folders) == len(names)
    assert len({f.casefold() for f in folders}) == len(names)
    assert all(f[0].isalnum() for f in folders)
    root = _unzip(data, tmp_path)
    summary = {c["name"]: c["folder"] for c in json.loads((root / "export.json").read_text())["classes"]}
    assert summary["../x"] == "x" and summary["a/b"] == "a_b" and summary["a_b"] == "a_b-2"
    assert summary["test"] == "Test" and summary["Test"] == "Test-2" and summary["val-1"] == "Val-1"
    assert summary["latest"] == "latest"  # "test" inside a word is no split name
    assert summary["CON"] == "CON_class"
    assert summary["metadata.csv"] == "metadata.csv-2"  # a folder never takes a root file's name

    from torchvision.datasets import ImageFolder

    dataset = ImageFolder(root)
    assert len(dataset) == len(names)


def test_it_names_an_empty_class_folder(project):
    assert imagefolder.class_folders(["", "...", "ok"]) == {"": "class", "...": "class-2", "ok": "ok"}


def test_the_zip_marks_model_guesses_when_asked(project, labeled, tmp_path):
    _fake_model(project, PROBS)
    root = _unzip(_export(project, "imagefolder", with_predictions=True, min_confidence=0.9), tmp_path)
    with (root / "metadata.csv").open(newline="") as fh:
        meta = {int(row["item_id"]): row for row in csv.DictReader(fh)}
    assert meta[labeled[2].pk]["label_source"] == "model"
    assert meta[labeled[2].pk]["file_name"] == f"two/{labeled[2].pk}.png"
    assert meta[labeled[2].pk]["model_confidence"] == "0.9"
    root_plain = _unzip(_export(project, "imagefolder"), tmp_path / "plain")
    assert not (root_plain / "two" / f"{labeled[2].pk}.png").exists()


def test_it_writes_gif_images_as_png(project, alice, tmp_path):
    item = Item(project=project, content_hash="f" * 64, width=32, height=24, pool_index=0)
    item.image.save("f.gif", ContentFile(png_bytes(3, fmt="GIF")), save=False)
    item.save()
    _answer(item, alice, "one")
    root = _unzip(_export(project, "imagefolder"), tmp_path)
    assert [p.name for p in (root / "one").iterdir()] == [f"{item.pk}.png"]

    from torchvision.datasets import ImageFolder

    assert len(ImageFolder(root)) == 1


def test_it_skips_files_outside_media_root(project, make_items, alice, tmp_path, caplog):
    items = make_items(3)
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes(99))
    Item.objects.filter(pk=items[0].pk).update(image="../secret.png")
    link = Path(settings.MEDIA_ROOT) / "items" / "link.png"
    os.symlink(outside, link)
    Item.objects.filter(pk=items[1].pk).update(image="items/link.png")
    for item in items:
        _answer(item, alice, "zero")
    data = _export(project, "imagefolder")
    assert png_bytes(99) not in data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert [n for n in archive.namelist() if n.startswith("zero/")] == [f"zero/{items[2].pk}.png"]
        assert json.loads(archive.read("export.json"))["skipped_items"] == [items[0].pk, items[1].pk]
        meta = list(csv.DictReader(io.StringIO(archive.read("metadata.csv").decode())))
    assert [row["item_id"] for row in meta] == [str(items[2].pk)]
    assert "outside MEDIA_ROOT" in caplog.text


def test_the_zip_is_written_piece_by_piece(project, make_items, alice, monkeypatch):
    # 1 KiB pieces: a 3 KiB image leaves the generator in several chunks, none holding the archive.
    monkeypatch.setattr(zipstream, "CHUNK_BYTES", 1024)
    items = make_items(3)
    for item in items:
        _answer(item, alice, "zero")
    chunks = list(formats.build(project, "imagefolder").chunks)
    total = sum(len(c) for c in chunks)
    assert len(chunks) >= 10
    assert max(len(c) for c in chunks) < 2048 < total


# --- model and embeddings ----------------------------------------------------------------------


def test_it_streams_the_latest_checkpoint(client, project, labeled, alice):
    _fake_model(project, PROBS)
    r = _get(client, alice, f"/api/projects/{project.pk}/export/?format=model")
    assert r.status_code == 200
    assert r["Content-Disposition"] == 'attachment; filename="digits-model-v1.pt"'
    assert _body(r) == (Path(settings.ARTIFACTS_ROOT) / f"{project.pk}/v1/learner.pt").read_bytes()


def test_it_streams_the_embeddings_with_item_ids(client, project, labeled, alice):
    emb = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    _fake_model(project, PROBS, embeddings=emb)
    r = _get(client, alice, f"/api/projects/{project.pk}/export/?format=embeddings")
    assert r.status_code == 200
    with np.load(io.BytesIO(_body(r))) as npz:
        np.testing.assert_array_equal(npz["embeddings"], emb)
        np.testing.assert_array_equal(npz["pool_index"], [0, 1, 2, 3])
        assert npz["item_id"].tolist() == [item.pk for item in labeled]


def test_it_says_when_there_is_no_model(client, project, labeled, alice):
    for fmt in ("model", "embeddings"):
        r = _get(client, alice, f"/api/projects/{project.pk}/export/?format={fmt}")
        assert r.status_code == 404
        assert r.json()["detail"].startswith("No trained model yet")
    _fake_model(project, PROBS, checkpoint=False)  # a fast-path version has no checkpoint
    r = client.get(f"/projects/{project.pk}/export/?format=model")
    assert r.status_code == 404
    assert r.content.decode().startswith("No trained model yet")


def test_a_reset_model_is_no_longer_exported(client, project, labeled, alice):

    _fake_model(project, PROBS)
    assert _get(client, alice, f"/api/projects/{project.pk}/export/?format=model").status_code == 200
    reset_model(project, by=alice)
    r = _get(client, alice, f"/api/projects/{project.pk}/export/?format=model")
    assert r.status_code == 404 and r.json()["detail"].startswith("No trained model yet")


def test_it_refuses_a_checkpoint_outside_artifacts_root(client, project, labeled, alice, tmp_path):
    version = _fake_model(project, PROBS)
    (tmp_path / "elsewhere.pt").write_bytes(b"not yours")
    ModelVersion.objects.filter(pk=version.pk).update(checkpoint="../elsewhere.pt")
    r = _get(client, alice, f"/api/projects/{project.pk}/export/?format=model")
    assert r.status_code == 404


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, words",
    [
        ("format=xlsx", "Choose one of: csv, jsonl, imagefolder, yolo-classify, fiftyone, labelstudio, model, embeddings"),
        ("format=json", "Choose one of"),  # DRF's renderer switch is off: the parameter is ours
        ("predictions=1&min_confidence=1.5", "min_confidence must be a number from 0 to 1"),
        ("predictions=1&min_confidence=high", "min_confidence must be a number from 0 to 1"),
        ("predictions=1&min_confidence=nan", "min_confidence must be a number from 0 to 1"),
        ("predictions=maybe", "predictions must be 1 or 0"),
    ],
)
def test_it_refuses_bad_options(client, project, alice, query, words):
    client.force_login(alice)
    r = client.get(f"/api/projects/{project.pk}/export/?{query}")
    assert r.status_code == 400
    assert words in r.json()["detail"]
    r = client.get(f"/projects/{project.pk}/export/?{query}")
    assert r.status_code == 400
    assert words in r.content.decode()


def test_the_command_refuses_bad_options(project, tmp_path):
    with pytest.raises(CommandError, match="min_confidence must be a number from 0 to 1"):
        call_command("export", project.slug, "--with-predictions", "--min-confidence", "2", "-o",
                     str(tmp_path / "x.csv"), stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="no project with the slug 'nope'"):
        call_command("export", "nope", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="No trained model yet"):
        call_command("export", project.slug, "--format", "model", "-o", str(tmp_path / "m.pt"),
                     stdout=io.StringIO(), stderr=io.StringIO())
    assert list(tmp_path.glob("*.pt")) == [] and list(tmp_path.glob("*.part")) == []


# --- the command ------------------------------------------------------------------------------


def test_the_command_writes_the_file(project, labeled, tmp_path, monkeypatch):
    out = tmp_path / "dataset.zip"
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("export", project.slug, "--format", "imagefolder", "-o", str(out), stdout=stdout, stderr=stderr)
    assert f"Wrote {out}" in stdout.getvalue()
    assert "Exporting" in stderr.getvalue()  # the progress bar
    with zipfile.ZipFile(out) as archive:
        assert len([n for n in archive.namelist() if n.count("/") == 1]) == 3
    monkeypatch.chdir(tmp_path)
    call_command("export", project.slug, stdout=io.StringIO(), stderr=io.StringIO())
    assert len(_csv_rows((tmp_path / "digits-labels.csv").read_bytes())) == 3


# --- who may export -----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob", "dave"])  # owner, annotator, viewer
def test_every_member_may_export(client, project, labeled, who, request):
    user = request.getfixturevalue(who)
    client.force_login(user)
    for url in (f"/api/projects/{project.pk}/export/?format=csv", f"/projects/{project.pk}/export/?format=csv"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert len(_csv_rows(_body(r))) == 3


def test_it_rejects_outsider(client, project, labeled, charlie):
    client.force_login(charlie)
    r = client.get(f"/api/projects/{project.pk}/export/?format=csv")
    assert r.status_code == 404
    assert r.json()["detail"] == "No such project."
    assert client.get(f"/projects/{project.pk}/export/?format=csv").status_code == 404
    assert client.get("/api/projects/999999/export/").status_code == 404


def test_it_rejects_anonymous(client, project, labeled):
    r = client.get(f"/api/projects/{project.pk}/export/?format=csv")
    assert r.status_code == 401
    assert r["WWW-Authenticate"].startswith("Token")
    r = client.get(f"/projects/{project.pk}/export/?format=csv")
    assert r.status_code == 302
    assert r["Location"].startswith("/accounts/login/?next=")


def test_it_accepts_a_token(api, project, labeled, bob):
    _, token_key = issue_token(bob)
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_key}")
    r = client.get(f"/api/projects/{project.pk}/export/?format=jsonl", HTTP_ACCEPT="application/x-ndjson")
    assert r.status_code == 200
    assert len(_body(r).decode().splitlines()) == 3
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert client.get(f"/api/projects/{project.pk}/export/").status_code == 401


def test_it_answers_any_accept_header(client, project, labeled, alice):
    client.force_login(alice)
    r = client.get(f"/api/projects/{project.pk}/export/?format=csv", HTTP_ACCEPT="text/csv")
    assert r.status_code == 200
    r = client.get(f"/api/projects/{project.pk}/export/?format=xlsx", HTTP_ACCEPT="text/csv")
    assert r.status_code == 400
    assert "Choose one of" in r.json()["detail"]


def test_it_rejects_writes(client, project, alice):
    client.force_login(alice)
    assert client.post(f"/projects/{project.pk}/export/").status_code == 405
    assert client.post(f"/api/projects/{project.pk}/export/").status_code == 405


# --- ASGI ---------------------------------------------------------------------------------------


def test_it_streams_under_asgi_without_reading_everything_first(project, labeled, alice):
    """Django reads a sync iterator whole before sending it under ASGI; the export gives ASGI
    an async iterator instead, which pulls one chunk at a time."""

    async def download():
        client = AsyncClient()
        await client.aforce_login(alice)
        response = await client.get(f"/api/projects/{project.pk}/export/?format=csv")
        body = b"".join([chunk async for chunk in response.streaming_content])
        return response, body

    response, body = async_to_sync(download)()
    assert response.status_code == 200
    assert response.is_async
    assert body == _export(project, "csv")


def test_it_lists_the_export_in_the_api_schema(client, alice):
    client.force_login(alice)
    r = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    operation = r.json()["paths"]["/api/projects/{id}/export/"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"id", "format", "predictions", "min_confidence", "split", "seed"}
    assert {"200", "400", "401", "404"} <= set(operation["responses"])

