"""Importing existing labels from a `file,class` CSV (import_labels, the API and the
settings page): per-row outcomes, idempotency, and whole-file refusals that write nothing."""
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotator.access import Invalid
from annotator.importing import labels
from annotator.importing.images import import_uploads
from annotator.importing.labels import LABEL_IMPORT_STATUSES, import_labels
from annotator.labeling.answers import submit_annotation
from annotator.labeling.corrections import delete_annotation
from annotator.labeling.leasing import lease_next
from annotator.models import Annotation, Item, Lease
from annotator.projects.changes import update_settings
from tests.conftest import png_bytes


@pytest.fixture
def named(project, make_items):
    """Four items called a.png ... d.png."""
    items = make_items(4)
    for item, name in zip(items, "abcd"):
        item.original_name = f"{name}.png"
        item.save(update_fields=["original_name"])
    return items


def _import(project, user, text):
    return import_labels(project, user, text.encode() if isinstance(text, str) else text)


def _statuses(report):
    return [(row["line"], row["status"]) for row in report["rows"]]


def test_it_imports_labels_as_import_answers(project, alice, named):
    report = _import(project, alice, "file,class\na.png,one\nb.png,two\n")
    assert (report["imported"], report["bad_row"]) == (2, 0)
    assert _statuses(report) == [(2, "imported"), (3, "imported")]
    assert report["rows"][0]["item"] == named[0].pk
    a = Annotation.objects.get(item=named[0])
    assert (a.label.name, a.annotator, a.source, a.undone) == ("one", alice, "import", False)
    named[0].refresh_from_db()
    assert (named[0].label_count, named[0].done) == (1, True)


def test_importing_the_same_csv_twice_creates_nothing_twice(project, alice, named):
    text = "file,class\na.png,one\nb.png,two\n"
    _import(project, alice, text)
    again = _import(project, alice, text)
    assert again["imported"] == 0 and again["already_labeled"] == 2
    assert Annotation.objects.count() == 2
    assert Item.objects.get(pk=named[0].pk).label_count == 1


def test_it_reports_every_kind_of_row(project, alice, bob, named):
    lease = lease_next(project, bob)
    submit_annotation(project, bob, item_id=lease.item_id, label="zero", idempotency_key="k")
    labeled = Item.objects.get(pk=lease.item_id).original_name
    free = [i.original_name for i in Item.objects.filter(project=project, label_count=0).order_by("pk")]
    text = (
        "file,class\n"
        f"{free[0]},one\n"
        "missing.png,one\n"
        f"{free[1]},seven\n"
        f"{labeled},two\n"
        f"{free[2]}\n"
        f",one\n"
        f"{free[0]},two\n"
    )
    report = _import(project, alice, text)
    assert _statuses(report) == [
        (2, "imported"), (3, "unknown_file"), (4, "unknown_class"), (5, "already_labeled"),
        (6, "bad_row"), (7, "bad_row"), (8, "already_labeled"),
    ]
    reasons = [row["reason"] for row in report["rows"]]
    assert "zero, one, two" in reasons[2]
    assert "Already labeled as 'zero' by bob" in reasons[3]
    assert "Line 2 already labels this image" in reasons[6]
    assert {k: report[k] for k in LABEL_IMPORT_STATUSES} == {
        "imported": 1, "unknown_file": 1, "unknown_class": 1, "already_labeled": 2, "bad_row": 2,
    }
    assert Annotation.objects.filter(source="import").count() == 1


def test_it_matches_content_hashes_paths_and_class_case(project, alice, named):
    text = f"File , CLASS\n{named[0].content_hash.upper()},One\nimages/cat/b.png,two\nC:\\x\\c.png,zero\n"
    report = _import(project, alice, text)
    assert _statuses(report) == [(2, "imported"), (3, "imported"), (4, "imported")]
    assert [a.label.name for a in Annotation.objects.order_by("item__pool_index")] == ["one", "two", "zero"]


def test_it_accepts_a_bom_extra_columns_and_blank_lines(project, alice, named):
    data = "\ufeffid,file,class,notes\n\n1,a.png,one,ok\n".encode()
    report = _import(project, alice, data)
    assert _statuses(report) == [(3, "imported")]


def test_an_ambiguous_file_name_asks_for_the_hash(project, alice, named):
    Item.objects.filter(pk=named[1].pk).update(original_name="a.png")
    report = _import(project, alice, "file,class\na.png,one\n")
    assert report["rows"][0]["status"] == "unknown_file"
    assert "content hash" in report["rows"][0]["reason"]


def test_it_leaves_items_open_when_more_answers_are_needed(project, alice, named):
    update_settings(project, annotations_per_item=2)
    _import(project, alice, "file,class\na.png,one\n")
    named[0].refresh_from_db()
    assert (named[0].label_count, named[0].done) == (1, False)


def test_it_gives_back_leases_on_items_it_completes(project, alice, bob, named):
    lease = lease_next(project, bob)
    name = Item.objects.get(pk=lease.item_id).original_name
    _import(project, alice, f"file,class\n{name},one\n")
    assert not Lease.objects.filter(pk=lease.pk).exists()


def test_a_deleted_import_can_be_imported_again(project, alice, named):
    _import(project, alice, "file,class\na.png,one\n")
    delete_annotation(project, Annotation.objects.get().pk, by=alice)
    report = _import(project, alice, "file,class\na.png,two\n")
    assert report["imported"] == 1
    assert Annotation.objects.get(undone=False).label.name == "two"


def test_it_does_not_label_what_the_importer_skipped(project, alice, named):
    lease = lease_next(project, alice)
    submit_annotation(project, alice, item_id=lease.item_id, skip=True, idempotency_key="s")
    name = Item.objects.get(pk=lease.item_id).original_name
    report = _import(project, alice, f"file,class\n{name},one\n")
    assert report["rows"][0]["status"] == "already_labeled"
    assert "skipped" in report["rows"][0]["reason"]


def test_it_reuses_the_key_of_folder_pre_labels(project, alice):
    """Images imported from class folders are already labeled; the CSV adds nothing."""
    class Named(io.BytesIO):
        name = "one/x.png"

    import_uploads(project, [Named(png_bytes(1))], user=alice)
    report = _import(project, alice, "file,class\nx.png,two\n")
    assert report["rows"][0]["status"] == "already_labeled"
    assert Annotation.objects.get().idempotency_key.startswith("import:")


@pytest.mark.parametrize(
    "data, message",
    [
        ("file,class\na.png,one\n".encode("utf-16"), "not UTF-8"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"name,label\na.png,one\n", "header file,class"),
        (b"a.png,one\nb.png,two\n", "header file,class"),
        (b"file,class\n", "no rows"),
        (b"file,class\na.png,one\x00\n", "not a text CSV"),
        (b'file,class\n"a.png,one\n', "cannot be read as CSV"),
    ],
)
def test_a_bad_csv_is_refused_whole(project, alice, named, data, message):
    with pytest.raises(Invalid) as refused:
        _import(project, alice, data)
    assert message in refused.value.message
    assert not Annotation.objects.exists()


def test_a_bad_row_far_down_does_not_refuse_the_file(project, alice, named):
    report = _import(project, alice, "file,class\na.png,one\n" + "x" * 300 + ",one\n")
    assert _statuses(report) == [(2, "imported"), (3, "bad_row")]


def test_a_too_large_csv_is_refused(project, alice, named, monkeypatch):
    monkeypatch.setattr(labels, "LABEL_IMPORT_MAX_BYTES", 30)
    with pytest.raises(Invalid, match="larger than"):
        _import(project, alice, "file,class\na.png,one\nb.png,two\nc.png,zero\n")
    assert not Annotation.objects.exists()


def test_too_many_rows_are_refused(project, alice, named, monkeypatch):
    monkeypatch.setattr(labels, "LABEL_IMPORT_MAX_ROWS", 2)
    with pytest.raises(Invalid, match="more than 2 rows"):
        _import(project, alice, "file,class\na.png,one\nb.png,two\nc.png,zero\n")
    assert not Annotation.objects.exists()


# --- POST /api/projects/{id}/labels/import/ -------------------------------------------------------


def _post(client, project, data, name="labels.csv"):
    return client.post(
        f"/api/projects/{project.pk}/labels/import/", {"file": SimpleUploadedFile(name, data)}, format="multipart"
    )


def test_api_imports_and_reports(project, api, alice, named):
    r = _post(api(alice), project, b"file,class\na.png,one\nz.png,one\n")
    assert r.status_code == 200
    body = r.json()
    assert (body["imported"], body["unknown_file"]) == (1, 1)
    assert body["rows"][1] == {
        "line": 3, "file": "z.png", "label": "one", "status": "unknown_file",
        "reason": "No image in this project has this file name or content hash.", "item": None,
    }


def test_api_refuses_a_bad_csv_with_a_sentence(project, api, alice, named):
    r = _post(api(alice), project, b"\xff\xfe\x00\x00")
    assert r.status_code == 400
    assert "UTF-8" in r.json()["detail"]
    assert not Annotation.objects.exists()


def test_api_requires_a_file(project, api, alice):
    r = api(alice).post(f"/api/projects/{project.pk}/labels/import/", {}, format="multipart")
    assert r.status_code == 400
    assert "file" in r.json()


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_api_refuses_annotators_and_viewers(project, api, named, who, request):
    r = _post(api(request.getfixturevalue(who)), project, b"file,class\na.png,one\n")
    assert r.status_code == 403
    assert not Annotation.objects.exists()


def test_api_rejects_outsider(project, api, charlie, named):
    assert _post(api(charlie), project, b"file,class\na.png,one\n").status_code == 404
    assert not Annotation.objects.exists()


def test_api_rejects_anonymous(project, api, named):
    assert _post(api(None), project, b"file,class\na.png,one\n").status_code == 401


# --- the settings page ------------------------------------------------------------------------------


def _page_post(client, project, data, **extra):
    url = reverse("label-import", args=[project.pk])
    return client.post(url, {"file": SimpleUploadedFile("labels.csv", data)}, **extra)


def test_page_shows_the_report_in_place(client, project, alice, named):
    client.force_login(alice)
    r = _page_post(client, project, b"file,class\na.png,one\nz.png,one\n", HTTP_HX_REQUEST="true")
    body = r.content.decode()
    assert r.status_code == 200
    assert body.lstrip().startswith('<div id="label-import-result"')
    assert "<strong>1</strong> imported" in body and "z.png" in body
    assert Annotation.objects.count() == 1


def test_page_shows_why_a_csv_was_refused(client, project, alice, named):
    client.force_login(alice)
    r = _page_post(client, project, b"name,label\na.png,one\n")
    assert r.status_code == 400
    assert "header file,class" in r.content.decode()
    r = client.post(reverse("label-import", args=[project.pk]), {})
    assert r.status_code == 400
    assert "Choose a CSV file" in r.content.decode()


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_page_refuses_annotators_and_viewers(client, project, named, who, request):
    client.force_login(request.getfixturevalue(who))
    assert _page_post(client, project, b"file,class\na.png,one\n").status_code == 403
    assert not Annotation.objects.exists()


def test_page_rejects_outsider(client, project, charlie, named):
    client.force_login(charlie)
    assert _page_post(client, project, b"file,class\na.png,one\n").status_code == 404


def test_page_redirects_anonymous_to_login(client, project, named):
    r = _page_post(client, project, b"file,class\na.png,one\n")
    assert r.status_code == 302 and r["Location"].startswith(reverse("login"))
