"""The trainer reads images through the storage, not from a path: with the images in a bucket
(moto's S3 server) and nothing under MEDIA_ROOT, pool arrays, the pixel store and backbone
embeddings are the same as from local files; the stores live under CACHE_DIR."""
import numpy as np
import pytest
from django.core.files.base import ContentFile

from annotator.modelloop import backbone, pixels
from annotator.modelloop.arrays import image_shape, load_images, pool_rows
from annotator.models import Item
from annotator.projects.changes import create_project
from annotator.storage import s3_name
from tests.annotator.modelloop.test_backbone import photo, weights  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def bucket_project(settings, s3_storage, alice, tmp_path):
    """Four photos uploaded into the bucket storage and two registered in place from
    another prefix; the local copies of the same bytes, for reference."""
    settings.CACHE_DIR = tmp_path / "cache"
    project = create_project(alice, name="Bucket", classes=["red", "green"], audit_fraction=0.0)
    rng = np.random.default_rng(0)
    local = tmp_path / "reference"
    local.mkdir()
    for i in range(6):
        data = photo(["red", "green", "blue"][i % 3], rng)
        (local / f"{i}.png").write_bytes(data)
        item = Item(project=project, content_hash=f"{i:064x}", width=48, height=40, pool_index=i, priority=0.5)
        if i < 4:
            item.image.save(f"{i}.png", ContentFile(data), save=False)
        else:
            s3_storage.put(f"theirs/{i}.png", data)
            item.image.name = s3_name(s3_storage.name, f"theirs/{i}.png")
        item.save()
    project.reference = [str(local / f"{i}.png") for i in range(6)]
    return project


def _no_local_images(settings):
    media = settings.MEDIA_ROOT
    return not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_pool_arrays_come_from_the_bucket(settings, bucket_project):
    ids, _, names = pool_rows(bucket_project)
    assert names[0].startswith("items/") and names[5].startswith("s3://")
    got = load_images(names, 24, 3)
    reference = load_images_from_paths(bucket_project.reference, 24, 3)
    assert got.shape == (6, 24, 24, 3) and got.any(axis=(1, 2, 3)).all()
    assert np.array_equal(got, reference)
    assert image_shape(names) == (40, 3)
    assert _no_local_images(settings)


def load_images_from_paths(paths, side, channels):
    """The naive reference: PIL on local files, as load_images did before the storage."""
    from PIL import Image, ImageOps

    from annotator.modelloop.arrays import centre_square

    out = []
    for path in paths:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("L" if channels == 1 else "RGB")
            out.append(np.asarray(im.resize((side, side), Image.BILINEAR, box=centre_square(im.size), reducing_gap=2.0)))
    return np.stack(out)


def test_the_pixel_store_lives_under_cache_dir(settings, bucket_project):
    ids, _, names = pool_rows(bucket_project)
    pool, decoded = pixels.pixel_pool(bucket_project, ids, names, 24, 3, 24)
    assert decoded == 6 and pool.tensor().shape == (6, 3, 24, 24)
    folder = pixels.store_folder(bucket_project, 24, 3, 24)
    assert folder.is_relative_to(settings.CACHE_DIR) and folder.is_dir()
    assert not (settings.ARTIFACTS_ROOT / "projects").exists()
    assert pixels.pixel_pool(bucket_project, ids, names, 24, 3, 24)[1] == 0  # decoded once
    assert _no_local_images(settings)


@pytest.mark.slow  # a ResNet-18 over 12 images, one DataLoader worker process
def test_backbone_embeddings_read_through_the_storage(settings, bucket_project, weights):  # noqa: F811
    from mlcore.encoders import registry
    from mlcore.imaging import embed_files

    settings.EMBED_WORKERS = 1  # a DataLoader worker process opens the bucket itself
    settings.EMBED_BATCH_SIZE = 4
    ids, _, names = pool_rows(bucket_project)
    chosen = backbone.Backbone("resnet18", weights)
    store = backbone.open_store(bucket_project, chosen, 0)
    assert backbone.store_folder(bucket_project, chosen, 0).is_relative_to(settings.CACHE_DIR)
    assert backbone.embed_missing(store, chosen, ids, names, "cpu") == 6
    spec = registry.get("resnet18")
    reference, failed = embed_files(spec.build(weights), bucket_project.reference, spec.input_size, spec.mean,
                                    spec.std, batch_size=4, workers=0)
    assert len(failed) == 0
    np.testing.assert_allclose(store.get(ids), reference, atol=2e-3)  # float16 in the store
    assert _no_local_images(settings)
