"""Importing in place from a bucket (moto's S3 server): objects are listed, checked like
uploads and registered without being copied; a second run registers new objects only; a
corrupt object is reported, not registered. The command, the API and the project page."""
import io

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from annotator.access import Invalid
from annotator.importing import bucket as bucket_import
from annotator.importing.report import DUPLICATE, IMPORTED, REJECTED
from annotator.models import Annotation, Item, Job
from annotator.storage import item_storage, s3_name
from tests.conftest import api_client, png_bytes

pytestmark = pytest.mark.django_db


def _fill(s3, n=3, prefix="photos/"):
    for i in range(n):
        s3.put(f"{prefix}img{i}.png", png_bytes(i))


def _local_files(settings):
    return sorted(p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()) if settings.MEDIA_ROOT.exists() else []


def test_registers_in_place_then_only_new_objects(settings, s3, project, alice):
    _fill(s3, 3)
    s3.put("photos/broken.png", png_bytes(9)[:60])  # truncated
    s3.put("photos/.DS_Store", b"junk")  # hidden: skipped silently
    s3.put("elsewhere/x.png", png_bytes(8))  # outside the prefix
    url = f"s3://{s3.name}/photos/"
    calls = []
    report = bucket_import.import_bucket(project, url, user=alice, progress=lambda done, total: calls.append((done, total)))
    assert report.counts == {IMPORTED: 3, DUPLICATE: 0, REJECTED: 1}
    (rejected,) = report.with_status(REJECTED)
    assert rejected.name == "photos/broken.png" and "damaged or truncated" in rejected.reason
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)
    items = Item.objects.filter(project=project).order_by("pool_index")
    assert sorted(i.image.name for i in items) == [s3_name(s3.name, f"photos/img{i}.png") for i in range(3)]
    assert [i.pool_index for i in items] == [0, 1, 2]
    assert item_storage().read_bytes(items[0].image.name) in {png_bytes(i) for i in range(3)}
    assert _local_files(settings) == []  # nothing copied
    assert s3.keys() == sorted(["photos/img0.png", "photos/img1.png", "photos/img2.png", "photos/broken.png",
                                "photos/.DS_Store", "elsewhere/x.png"])
    project.refresh_from_db()
    assert (project.source_bucket, project.source_prefix) == (s3.name, "photos/")

    s3.put("photos/img3.png", png_bytes(3))
    s3.put("photos/copy-of-0.png", png_bytes(0))  # same content as a registered one
    again = bucket_import.import_bucket(project, url, user=alice)
    assert again.counts == {IMPORTED: 1, DUPLICATE: 4, REJECTED: 1}
    assert Item.objects.filter(project=project).count() == 4
    third = bucket_import.import_bucket(project, url, user=alice)
    assert third.counts[IMPORTED] == 0


def test_folder_labels_and_display_copies(settings, s3, project, alice):
    s3.put("set/one/a.png", png_bytes(1))
    s3.put("set/big.png", png_bytes(2, size=(2000, 30)))  # wider than DISPLAY_MAX_SIDE
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    Image.new("RGB", (40, 20), "red").save(buffer, format="JPEG", exif=exif)
    s3.put("set/rotated.jpg", buffer.getvalue())
    report = bucket_import.import_bucket(project, f"s3://{s3.name}/set/", user=alice)
    assert report.imported == 3
    labeled = Item.objects.get(project=project, original_name="a.png")
    assert Annotation.objects.get(item=labeled).label.name == "one"
    big = Item.objects.get(project=project, original_name="big.png")
    rotated = Item.objects.get(project=project, original_name="rotated.jpg")
    assert big.display_image and rotated.display_image and (rotated.width, rotated.height) == (20, 40)
    assert not labeled.display_image
    assert len(_local_files(settings)) == 2  # the two display copies, in the (local) storage


def test_limits_apply_as_for_uploads(settings, s3, project, alice):
    settings.IMPORT_MAX_FILE_BYTES = 1500
    settings.IMPORT_MAX_PIXELS = 500
    s3.put("a/large.bin", b"x" * 2000)
    s3.put("a/many-pixels.png", png_bytes(1, size=(30, 30), mode="L"))
    s3.put("a/text.png", b"not an image at all")
    report = bucket_import.import_bucket(project, f"s3://{s3.name}/a/", user=alice)
    reasons = {o.name: o.reason for o in report.with_status(REJECTED)}
    assert "larger than" in reasons["a/large.bin"]
    assert "pixels" in reasons["a/many-pixels.png"]
    assert "not an image" in reasons["a/text.png"]
    assert report.imported == 0


def test_the_quota_refuses_before_anything_is_registered(settings, s3, project, alice):
    settings.MAX_IMAGES_PER_PROJECT = 2
    _fill(s3, 3)
    with pytest.raises(Invalid, match="room for 2 more"):
        bucket_import.import_bucket(project, f"s3://{s3.name}/photos/", user=alice)
    assert not Item.objects.filter(project=project).exists()


def test_a_bucket_the_server_cannot_read(s3, project, alice):
    with pytest.raises(Invalid, match="cannot list s3://no-such-bucket-here/.*NoSuchBucket"):
        bucket_import.import_bucket(project, "s3://no-such-bucket-here/", user=alice)


def test_listing_is_paginated(s3, project, alice, monkeypatch):
    monkeypatch.setattr(bucket_import, "PAGE_SIZE", 2)
    _fill(s3, 5)
    assert [o.key for o in bucket_import.list_objects(s3.name, "photos/")] == [f"photos/img{i}.png" for i in range(5)]


def test_the_command(s3, project, alice, capsys):
    _fill(s3, 2)
    s3.put("photos/bad.png", b"junk")
    call_command("import_images", project.slug, f"s3://{s3.name}/photos/")
    out = capsys.readouterr()
    assert "2 registered, 0 already known, 1 rejected" in out.out and "photos/bad.png" in out.out
    assert "Registering" in out.err  # the progress bar
    call_command("import_images", project.slug, f"s3://{s3.name}/photos/")
    assert "0 registered, 2 already known, 1 rejected" in capsys.readouterr().out
    with pytest.raises(CommandError, match="must start with s3://"):
        call_command("import_images", project.slug, "s3:/photos")


def test_the_api(s3, project, alice, bob, charlie):
    _fill(s3, 2)
    url = f"/api/projects/{project.pk}/bucket-import/"
    body = {"url": f"s3://{s3.name}/photos/"}
    assert api_client(charlie).post(url, body, format="json").status_code == 404
    assert api_client(bob).post(url, body, format="json").status_code == 403
    response = api_client(alice).post(url, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["registered"] == 2 and response.json()["already_known"] == 0
    again = api_client(alice).post(url, {}, format="json")  # the saved source
    assert again.status_code == 200 and again.json()["registered"] == 0 and again.json()["already_known"] == 2
    bad = api_client(alice).post(url, {"url": "http://example.org/x"}, format="json")
    assert bad.status_code == 400 and "must start with s3://" in bad.content.decode()


def test_the_api_without_a_saved_source(s3, project, alice):
    response = api_client(alice).post(f"/api/projects/{project.pk}/bucket-import/", {}, format="json")
    assert response.status_code == 400 and "no saved bucket source" in response.content.decode()


def test_the_api_in_the_background(s3, project, alice, run_worker):
    _fill(s3, 2)
    s3.put("photos/bad.png", b"junk")
    response = api_client(alice).post(f"/api/projects/{project.pk}/bucket-import/",
                                      {"url": f"s3://{s3.name}/photos/", "background": True}, format="json")
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.kind == "bucket-import" and not Item.objects.filter(project=project).exists()
    run_worker()
    job.refresh_from_db()
    assert job.status == "succeeded" and (job.result["registered"], job.result["rejected"]) == (2, 1)
    assert [f["name"] for f in job.result["files"]] == ["photos/bad.png"]  # only the rejected are listed
    assert Item.objects.filter(project=project).count() == 2
    bad = api_client(alice).post(f"/api/projects/{project.pk}/bucket-import/",
                                 {"url": "s3:/photos", "background": True}, format="json")
    assert bad.status_code == 400 and not Job.objects.exclude(pk=job.pk).exists()  # refused before any job


def test_the_project_page(client, s3, project, alice, bob, charlie, run_worker):
    _fill(s3, 2)
    url = f"/projects/{project.pk}/import/bucket/"
    client.force_login(charlie)
    assert client.post(url, {"url": f"s3://{s3.name}/photos/"}).status_code == 404
    client.force_login(bob)
    assert client.post(url, {"url": f"s3://{s3.name}/photos/"}).status_code == 403
    client.force_login(alice)
    response = client.post(url, {"url": f"s3://{s3.name}/photos/"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "in the background (job #" in response.content.decode()  # a worker lists the bucket, not the request
    run_worker()
    assert Item.objects.filter(project=project).count() == 2
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert "2 registered, 0 already known, 0 rejected" in page  # the job's summary under Background jobs
    assert f'value="s3://{s3.name}/photos/"' in page  # the saved source fills the form
    refused = client.post(url, {"url": "s3://UPPER/"})
    assert refused.status_code == 400 and "not a valid bucket name" in refused.content.decode()


def test_batches_hold_a_bounded_number_of_bytes(s3, project, alice, monkeypatch):
    monkeypatch.setattr(bucket_import, "BATCH_BYTES", 1)  # one object per batch
    objects = [bucket_import.BucketObject(f"k{i}", 10) for i in range(3)]
    assert [len(b) for b in bucket_import._batches(objects)] == [1, 1, 1]
    monkeypatch.setattr(bucket_import, "BATCH_BYTES", 25)
    assert [len(b) for b in bucket_import._batches(objects)] == [2, 1]
    _fill(s3, 3)
    monkeypatch.setattr(bucket_import, "BATCH_BYTES", 1)
    assert bucket_import.import_bucket(project, f"s3://{s3.name}/photos/", user=alice).imported == 3
    assert sorted(Item.objects.filter(project=project).values_list("pool_index", flat=True)) == [0, 1, 2]
