"""POST /api/projects/{id}/images/: multipart upload of images and zip archives (owners only)."""
import io
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.models import Item
from tests.conftest import png_bytes


def _upload(client, project, files):
    return client.post(f"/api/projects/{project.pk}/images/", {"file": files}, format="multipart")


def _png(name, seed):
    return SimpleUploadedFile(name, png_bytes(seed), content_type="image/png")


def _zip(name, members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/zip")


def test_owner_uploads_images(project, api, alice):
    r = _upload(api(alice), project, [_png("a.png", 1), _png("b.png", 2)])
    assert r.status_code == 201
    body = r.json()
    assert (body["imported"], body["duplicates"], body["rejected"]) == (2, 0, 0)
    assert {f["name"] for f in body["files"]} == {"a.png", "b.png"}
    assert all(f["status"] == "imported" for f in body["files"])
    items = Item.objects.filter(project=project)
    assert {f["item"] for f in body["files"]} == set(items.values_list("pk", flat=True))
    assert sorted(items.values_list("original_name", flat=True)) == ["a.png", "b.png"]


def test_owner_uploads_a_zip(project, api, alice):
    archive = _zip("batch.zip", {"x/one.png": png_bytes(3), "x/two.png": png_bytes(4)})
    r = _upload(api(alice), project, [archive])
    assert r.status_code == 201
    assert r.json()["imported"] == 2
    assert Item.objects.filter(project=project).count() == 2


def test_a_repeated_upload_answers_200_with_duplicates(project, api, alice):
    first = _upload(api(alice), project, [_png("a.png", 1)])
    r = _upload(api(alice), project, [_png("again.png", 1)])
    assert r.status_code == 200
    body = r.json()
    assert (body["imported"], body["duplicates"]) == (0, 1)
    assert body["files"][0]["status"] == "duplicate"
    assert body["files"][0]["item"] == first.json()["files"][0]["item"]
    assert Item.objects.filter(project=project).count() == 1


def test_it_reports_a_file_that_is_not_an_image(project, api, alice):
    fake = SimpleUploadedFile("notes.png", b"these are not pixels", content_type="image/png")
    r = _upload(api(alice), project, [fake, _png("ok.png", 5)])
    assert r.status_code == 201
    body = r.json()
    assert (body["imported"], body["rejected"]) == (1, 1)
    [rejected] = [f for f in body["files"] if f["status"] == "rejected"]
    assert rejected["name"] == "notes.png"
    assert rejected["reason"]
    assert rejected["item"] is None


def test_it_answers_200_when_nothing_is_imported(project, api, alice):
    fake = SimpleUploadedFile("notes.txt", b"hello", content_type="text/plain")
    r = _upload(api(alice), project, [fake])
    assert r.status_code == 200
    assert r.json()["rejected"] == 1
    assert not Item.objects.exists()


def test_it_requires_the_file_field(project, api, alice):
    r = api(alice).post(f"/api/projects/{project.pk}/images/", {"image": _png("a.png", 1)}, format="multipart")
    assert r.status_code == 400
    assert "field 'file'" in r.json()["detail"]
    assert not Item.objects.exists()


def test_annotators_and_viewers_cannot_upload(project, api, bob, dave):
    for user in (bob, dave):
        r = _upload(api(user), project, [_png("a.png", 1)])
        assert r.status_code == 403
        assert "this needs owner" in r.json()["detail"]
    assert not Item.objects.exists()


def test_it_rejects_outsider(project, api, charlie):
    assert _upload(api(charlie), project, [_png("a.png", 1)]).status_code == 404
    assert not Item.objects.exists()


def test_it_rejects_anonymous(project, api):
    assert _upload(api(None), project, [_png("a.png", 1)]).status_code in (401, 403)
    assert not Item.objects.exists()
