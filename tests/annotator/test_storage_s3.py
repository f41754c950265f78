"""Images in an S3 bucket (STORAGE_BACKEND=s3, moto's server): uploads land in the bucket,
the member-checked image view redirects to a presigned URL or streams the object, exports
read from the bucket, deleting a project removes its objects (never those imported in place),
and the model files the web reads are shared through the bucket."""
import io
import urllib.request
import zipfile

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile

from annotator.access import Invalid
from annotator.importing.bucket import source_of
from annotator.models import Item, Project
from annotator.storage import BucketUrlError, bucket_origins, item_storage, parse_s3_url, s3_name, storage_settings
from tests.conftest import api_client, png_bytes

pytestmark = pytest.mark.django_db


def _upload(project, user, *images):
    files = [io.BytesIO(data) for data in images]
    for i, handle in enumerate(files):
        handle.name = f"img{i}.png"
    return api_client(user).post(f"/api/projects/{project.pk}/images/", {"file": files}, format="multipart")


def _media_files(settings):
    root = settings.MEDIA_ROOT
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize("url, bucket, prefix", [
    ("s3://photos/", "photos", ""),
    ("s3://photos", "photos", ""),
    ("S3://my.bucket-1/a/b/", "my.bucket-1", "a/b/"),
])
def test_s3_urls_parse(url, bucket, prefix):
    assert parse_s3_url(url) == (bucket, prefix)


@pytest.mark.parametrize("url, words", [
    ("photos/", "must start with s3://"),
    ("https://photos/", "must start with s3://"),
    ("s3:///prefix/", "names no bucket"),
    ("s3://Photos/", "not a valid bucket name"),
    ("s3://ab/", "not a valid bucket name"),
    ("s3://photos/../other/", "'..' segments"),
])
def test_bad_s3_urls_say_what_is_wrong(url, words):
    with pytest.raises(BucketUrlError, match=words):
        parse_s3_url(url)
    with pytest.raises(Invalid, match=words):
        source_of(url)


def test_an_upload_goes_to_the_bucket_and_not_the_disk(settings, s3_storage, project, alice):
    big = png_bytes(1, size=(2000, 40))  # longer than DISPLAY_MAX_SIDE: a display copy too
    response = _upload(project, alice, png_bytes(0), big)
    assert response.status_code == 201, response.content
    items = list(Item.objects.filter(project=project).order_by("pk"))
    keys = s3_storage.keys()
    assert items[0].image.name in keys and items[1].image.name in keys and items[1].display_image.name in keys
    assert s3_storage.client.get_object(Bucket=s3_storage.name, Key=items[0].image.name)["Body"].read() == png_bytes(0)
    assert _media_files(settings) == []


def test_presigned_redirect_and_outsiders(client, s3_storage, project, alice, bob, charlie):
    _upload(project, alice, png_bytes(3))
    item = Item.objects.get(project=project)
    url = f"/projects/{project.pk}/items/{item.pk}/image/"
    client.force_login(bob)
    response = client.get(url)
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(s3_storage.endpoint) and "X-Amz-Signature=" in location
    assert "X-Amz-Expires=300" in location
    with urllib.request.urlopen(location) as answer:  # the browser follows it
        assert answer.read() == png_bytes(3)
        assert answer.headers["Content-Type"] == "image/png"
    client.force_login(charlie)
    assert client.get(url).status_code == 404


def test_the_csp_lets_presigned_images_come_from_the_bucket():
    assert bucket_origins("presigned", "https://minio.example.org:9000") == [
        "https://minio.example.org:9000", "https://*.minio.example.org:9000"]
    assert bucket_origins("presigned", "http://127.0.0.1:9000") == ["http://127.0.0.1:9000"]
    assert bucket_origins("presigned", None) == ["https://*.amazonaws.com"]
    assert bucket_origins("proxy", "http://127.0.0.1:9000") == []


@pytest.mark.parametrize("environ, words", [
    ({"STORAGE_BACKEND": "ftp"}, "must be local or s3"),
    ({"STORAGE_BACKEND": "s3"}, "needs AWS_STORAGE_BUCKET_NAME"),
    ({"MEDIA_DELIVERY": "presigned"}, "needs STORAGE_BACKEND=s3"),
    ({"MEDIA_DELIVERY": "cdn"}, "must be presigned or proxy"),
    ({"MEDIA_URL_EXPIRE_S": "5"}, "between 10 and 604800"),
    ({"MEDIA_URL_EXPIRE_S": "soon"}, "must be an integer"),
])
def test_wrong_storage_settings_stop_the_start(environ, words):
    with pytest.raises(ImproperlyConfigured, match=words):
        storage_settings(environ)


def test_storage_settings():
    local = storage_settings({})
    assert (local["STORAGE_BACKEND"], local["MEDIA_DELIVERY"], local["CACHE_DIR"]) == ("local", "proxy", None)
    assert local["MEDIA_STORAGE"] == {"BACKEND": "annotator.storage.AtomicFileSystemStorage"}
    s3 = storage_settings({"STORAGE_BACKEND": "s3", "AWS_STORAGE_BUCKET_NAME": "pics", "CACHE_DIR": "/tmp/c",
                           "AWS_S3_ENDPOINT_URL": "http://minio:9000"})
    assert s3["MEDIA_DELIVERY"] == "presigned" and s3["MEDIA_IMG_ORIGINS"][0] == "http://minio:9000"
    assert s3["MEDIA_STORAGE"]["OPTIONS"]["bucket_name"] == "pics" and not s3["MEDIA_STORAGE"]["OPTIONS"]["file_overwrite"]
    assert str(s3["CACHE_DIR"]) == "/tmp/c"


def test_proxy_streams_the_object(client, settings, s3_storage, project, alice, charlie):
    settings.MEDIA_DELIVERY = "proxy"
    _upload(project, alice, png_bytes(4))
    item = Item.objects.get(project=project)
    url = f"/projects/{project.pk}/items/{item.pk}/image/"
    client.force_login(alice)
    response = client.get(url)
    assert response.status_code == 200 and response.streaming
    assert b"".join(response.streaming_content) == png_bytes(4)
    assert response["Content-Type"] == "image/png" and response["Content-Length"] == str(len(png_bytes(4)))
    client.force_login(charlie)
    assert client.get(url).status_code == 404
    s3_storage.client.delete_object(Bucket=s3_storage.name, Key=item.image.name)
    client.force_login(alice)
    assert client.get(url).status_code == 404  # gone from the bucket: a 404, not a 500


def test_the_export_zip_reads_the_images_from_the_bucket(settings, s3_storage, project, alice):
    from annotator.labeling.answers import submit_annotation

    _upload(project, alice, png_bytes(5), png_bytes(6))
    zero, one = project.ordered_classes()[:2]
    for item, label in zip(Item.objects.filter(project=project).order_by("pk"), (zero, one), strict=True):
        submit_annotation(project, alice, item_id=item.pk, label=label.name, idempotency_key=f"k{item.pk}")
    response = api_client(alice).get(f"/api/projects/{project.pk}/export/?format=imagefolder")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    images = sorted(n for n in archive.namelist() if n.endswith(".png"))
    assert sorted(archive.read(n) for n in images) == sorted([png_bytes(5), png_bytes(6)])
    assert _media_files(settings) == []


def test_deleting_a_project_removes_its_objects_but_not_in_place_ones(s3_storage, project, alice,
                                                                     django_capture_on_commit_callbacks):
    _upload(project, alice, png_bytes(7))
    s3_storage.put("theirs/a.png", png_bytes(8))
    Item.objects.create(project=project, image=s3_name(s3_storage.name, "theirs/a.png"), content_hash="e" * 64,
                        width=32, height=24, pool_index=5)
    assert any(k.startswith(f"items/{project.pk}/") for k in s3_storage.keys())
    with django_capture_on_commit_callbacks(execute=True):
        Project.objects.filter(pk=project.pk).delete()
    assert s3_storage.keys() == ["theirs/a.png"]


def test_in_place_objects_are_read_never_written_or_deleted(s3, settings):
    s3.put("p/a.png", png_bytes(9))
    name = s3_name(s3.name, "p/a.png")
    storage = item_storage()
    assert storage.read_bytes(name) == png_bytes(9) and not storage.local(name)
    storage.delete(name)
    assert s3.keys() == ["p/a.png"]
    with pytest.raises(PermissionError):
        storage.open(name, "wb")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(s3_name(s3.name, "p/missing.png"))


def test_model_files_are_shared_through_the_bucket(settings, tmp_path, s3_storage, project):
    """A trainer publishes a version's files; a web process with another ARTIFACTS_ROOT
    reads them from the bucket."""
    from annotator.modelloop import predictions, shared
    from annotator.modelloop.results import save_array
    from annotator.models import ModelVersion

    folder = f"projects/{project.pk}/fast-test"
    base = shared.artifact_path(folder)
    base.mkdir(parents=True)
    save_array(base / predictions.POOL_INDEX_FILE, np.arange(3, dtype=np.int64))
    save_array(base / predictions.PROBS_FILE, np.eye(3, dtype=np.float32))
    shared.publish(folder)
    assert s3_storage.keys("artifacts/") == [f"artifacts/{folder}/{predictions.POOL_INDEX_FILE}",
                                             f"artifacts/{folder}/{predictions.PROBS_FILE}"]
    settings.ARTIFACTS_ROOT = tmp_path / "web-artifacts"  # another machine
    version = ModelVersion.objects.create(project=project, number=1, kind=ModelVersion.Kind.FAST,
                                          artifact_dir=folder, classes=["zero", "one", "two"])
    preds = predictions.load(version)
    assert preds is not None and np.array_equal(np.asarray(preds.probs), np.eye(3))
    assert (settings.ARTIFACTS_ROOT / "shared" / folder / predictions.PROBS_FILE).is_file()
    shared.unpublish(folder)
    assert s3_storage.keys("artifacts/") == []


def test_media_storage_follows_the_settings(settings, s3_storage):
    from annotator.storage import is_local, media_storage

    assert not is_local(media_storage())
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "annotator.storage.AtomicFileSystemStorage"}}
    assert is_local(media_storage())


def test_item_storage_saves_in_the_bucket(s3_storage):
    name = item_storage().save("items/1/ab/x.png", ContentFile(b"abc"))
    assert name == "items/1/ab/x.png" and s3_storage.keys() == [name]
    second = item_storage().save("items/1/ab/x.png", ContentFile(b"abd"))  # never overwritten
    assert second != name and len(s3_storage.keys()) == 2


def test_readyz_asks_the_bucket(client, settings, s3_storage):
    settings.READY_REQUIRE_TRAINER = False
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["storage"]["bucket"] == s3_storage.name
    settings.STORAGES = {**settings.STORAGES, "default": {**settings.STORAGES["default"], "OPTIONS": {
        **settings.STORAGES["default"]["OPTIONS"], "bucket_name": "no-such-bucket-anywhere"}}}
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["failing"] == ["storage"]
