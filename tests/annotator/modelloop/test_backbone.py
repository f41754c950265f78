"""A project on a pretrained backbone: weights from a local file (a randomly initialised
torchvision ResNet-18 saved in torchvision's own layout), each image embedded once into the
project's embedding store, the loop on the stored vectors."""
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from django.core.files.base import ContentFile
from PIL import Image

from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.modelloop import backbone, predictions
from annotator.modelloop.steering import reset_model, set_encoder
from annotator.modelloop.trainer import Trainer
from annotator.models import Item, ModelVersion
from annotator.projects.changes import create_project
from annotator.projects.members import add_member
from tests.annotator.modelloop.trainer_helpers import fast_trainer_settings

COLOURS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}


def photo(colour, rng, size=(48, 40)):
    """A noisy colour picture, wider than tall (the backbone sees it centre-cropped)."""
    base = np.array(COLOURS[colour], dtype=np.int16)
    a = np.clip(base + rng.integers(-40, 40, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def add_photos(project, n, seed=0):
    rng = np.random.default_rng(seed)
    start = Item.objects.filter(project=project).count()
    truth = {}
    for i in range(start, start + n):
        colour = list(COLOURS)[i % 3]
        name = f"{seed:08x}{i:056x}"
        item = Item(project=project, content_hash=name, width=48, height=40, pool_index=i,
                    priority=float(rng.random()), original_name=f"{colour}-{i}.png")
        item.image.save(f"{name}.png", ContentFile(photo(colour, rng)), save=False)
        item.save()
        truth[item.pk] = colour
    return truth


@pytest.fixture
def weights(settings, tmp_path, monkeypatch):
    """A WEIGHTS_DIR with a resnet18 file under torchvision's name; an empty hub cache."""
    settings.WEIGHTS_DIR = tmp_path / "weights"
    settings.WEIGHTS_DIR.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    torch.manual_seed(0)
    path = settings.WEIGHTS_DIR / "resnet18-f37072fd.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture
def photos(alice, bob, settings, weights):
    fast_trainer_settings(settings)
    settings.EMBED_WORKERS = 0
    settings.EMBED_BATCH_SIZE = 16
    project = create_project(alice, name="Colours", classes=list(COLOURS), audit_fraction=0.0, encoder="resnet18")
    add_member(project, "bob", "annotator")
    project.truth = add_photos(project, 24)
    return project


def versions(project, **filters):
    return ModelVersion.objects.filter(project=project, status="ok", **filters).order_by("number")


def label(project, user, n, prefix):
    for i in range(n):
        lease = lease_next(project, user)
        submit_annotation(project, user, item_id=lease.item_id, label=project.truth[lease.item_id],
                          idempotency_key=f"{prefix}{i}")


def test_the_backbone_embeds_each_image_once_and_the_loop_runs_on_the_vectors(photos, bob, alice, weights):
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    pretrain = versions(photos, kind="pretrain").get()
    assert (pretrain.metrics["encoder"], pretrain.metrics["embedded"]) == ("resnet18", 24)
    store = Path(backbone.store_folder(photos, backbone.Backbone("resnet18", Path("x")), 0))
    assert (store / "meta.json").exists()
    trainer.run_once()  # the cold-start queue
    label(photos, bob, 9, "a")
    trainer.run_once()
    fast = versions(photos, kind="fast").last()
    assert fast.metrics["encoder"] == "resnet18" and fast.metrics["embedded"] == 0
    probs = np.load(predictions.artifact_path(fast.artifact_dir) / "probs.npy")
    assert probs.shape == (24, 3)
    # each stored vector is the backbone's features of that item's image (a naive reference)
    from mlcore.encoders import registry
    from mlcore.imaging import load_image
    from mlcore.store import EmbeddingStore

    spec = registry.get("resnet18")
    net = spec.build(weights)
    stored = EmbeddingStore.open(store, readonly=True)
    for item in Item.objects.filter(project=photos).order_by("?")[:5]:
        x = load_image(item.image.path, spec.input_size, spec.mean, spec.std)
        with torch.no_grad():
            ref = net(x[None])[0].numpy()
        np.testing.assert_allclose(stored.get([item.pk])[0], ref / np.linalg.norm(ref), atol=2e-3)
    trainer.release()

    # a restart embeds nothing: the vectors come from the store
    again = Trainer("t2", publish=lambda *a: None)
    again.run_once()
    label(photos, bob, 1, "b")
    again.run_once()
    latest = versions(photos).last()
    assert latest.kind == "fast" and latest.metrics["embedded"] == 0
    assert not versions(photos, kind="pretrain").exclude(pk=pretrain.pk).exists()

    # an import embeds only the new images
    photos.truth.update(add_photos(photos, 6, seed=1))
    again.run_once()
    latest = versions(photos).last()
    assert (latest.pool_size, latest.metrics["embedded"]) == (30, 6)

    # a reset starts a new generation: every image again, and the old store goes
    reset_model(photos, by=alice)
    again.run_once()
    fresh = versions(photos, kind="pretrain").last()
    assert (fresh.generation, fresh.metrics["embedded"]) == (1, 30)
    assert not store.exists()
    again.release()


def test_auto_uses_the_backbone_for_photos_and_self_supervision_for_grayscale(photos, alice, settings):
    photos.encoder = "auto"
    assert backbone.choose(photos, (40, 3)).name == "resnet18"
    assert backbone.choose(photos, (28, 1)) is None  # digits, scans
    assert backbone.choose(photos, (16, 3)) is None  # icons
    photos.encoder = "self-supervised"
    assert backbone.choose(photos, (40, 3)) is None


def test_a_backbone_without_its_weights_fails_with_what_to_do(photos, alice):
    set_encoder(photos, "resnet50", by=alice)
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    failed = ModelVersion.objects.get(project=photos, status="failed")
    assert "manage.py weights add resnet50" in failed.error and "resnet50-11ad3fa6.pth" in failed.error
    trainer.release()


def test_an_uploaded_stock_state_dict_is_the_backbone(photos, alice, weights, api):
    """A stock torchvision ResNet-18 uploaded as the starting checkpoint: the trainer embeds
    the pool with it (the file's weights), no weights file needed on the server."""
    photos.encoder = "self-supervised"
    photos.save()
    data = io.BytesIO(weights.read_bytes())
    weights.unlink()  # the upload alone carries the weights
    r = api(alice).post(f"/api/projects/{photos.pk}/model/checkpoint/",
                        {"checkpoint": ContentFile(data.getvalue(), name="resnet18.pth")}, format="multipart")
    assert r.status_code == 200 and r.json()["architecture"] == "resnet18", r.content
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    pretrain = versions(photos, kind="pretrain").get()
    assert (pretrain.metrics["encoder"], pretrain.metrics["embedded"]) == ("resnet18", 24)
    trainer.run_once()
    trainer.release()
    again = Trainer("t2", publish=lambda *a: None)
    again.run_once()  # resumes from the uploaded file's vectors: nothing embedded again
    assert versions(photos, kind="pretrain").count() == 1
    again.release()


def test_the_model_export_of_a_backbone_project_carries_the_weights_and_starts_another_project(
        photos, alice, weights, api, tmp_path):
    """The exported .pt holds the backbone's weights: with the weights file gone from the
    server, it starts a new project on the same backbone, giving the same vectors."""
    from mlcore.checkpoint import load_checkpoint
    from mlcore.encoders.bundle import bundled_backbone

    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    trainer.release()
    first = versions(photos, kind="pretrain").get()
    r = api(alice).get(f"/api/projects/{photos.pk}/export/?format=model")
    assert r.status_code == 200, r.content
    exported = b"".join(r.streaming_content)
    (tmp_path / "exported.pt").write_bytes(exported)
    ck = load_checkpoint(str(tmp_path / "exported.pt"))
    assert bundled_backbone(ck) == "resnet18"
    stock = torchvision.models.resnet18(weights=None).state_dict()
    for key, tensor in ck["state"]["backbone"].items():
        torch.testing.assert_close(tensor, torch.load(weights, weights_only=True)[key])
    assert set(ck["state"]["backbone"]) == {k for k in stock if not k.startswith("fc.")}

    weights.unlink()  # only the export has the weights now
    other = create_project(alice, name="Colours again", classes=list(COLOURS), audit_fraction=0.0,
                           encoder="self-supervised")
    add_photos(other, 24)
    r = api(alice).post(f"/api/projects/{other.pk}/model/checkpoint/",
                        {"checkpoint": ContentFile(exported, name="colours-model-v1.pt")}, format="multipart")
    assert r.status_code == 200, r.content
    assert (r.json()["architecture"], r.json()["matched"], r.json()["total"]) == ("resnet18", 120, 120)
    again = Trainer("t2", publish=lambda *a: None)
    again.run_once()
    again.release()
    second = versions(other, kind="pretrain").get()
    assert (second.metrics["encoder"], second.metrics["embedded"]) == ("resnet18", 24)
    folder = lambda v: predictions.artifact_path(v.checkpoint).parent  # noqa: E731
    np.testing.assert_allclose(np.load(folder(second) / "embeddings.npy"), np.load(folder(first) / "embeddings.npy"),
                               atol=1e-3)


def test_the_export_says_so_when_the_backbone_weights_are_gone(photos, alice, weights, api):
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    trainer.release()
    weights.unlink()
    r = api(alice).get(f"/api/projects/{photos.pk}/export/?format=model")
    assert r.status_code == 404
    assert "weights of the resnet18 encoder are no longer on this server" in r.json()["detail"]
