"""Encoders whose package (timm, open_clip) is not installed: the settings refuse them, the
settings page says so, `auto` passes them by and a project that has one fails with what to
do. "Not installed" is simulated by making `import open_clip` fail."""
import sys

import pytest
from django.urls import reverse

from annotator.modelloop import backbone
from annotator.modelloop.trainer import Trainer
from annotator.models import ModelVersion, Project
from annotator.projects.changes import create_project
from mlcore.encoders import catalog

CLIP = "open_clip/ViT-B-32"


@pytest.fixture
def project(alice, weights_dir):
    return create_project(alice, name="Photos", classes=["cat", "dog"])


@pytest.fixture
def no_open_clip(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)


def _settings(project):
    return f"/api/projects/{project.pk}/settings/"


def test_an_installed_family_can_be_chosen(project, api, alice, charlie):
    assert api(charlie).patch(_settings(project), {"encoder": CLIP}, format="json").status_code == 404
    r = api(alice).patch(_settings(project), {"encoder": CLIP}, format="json")
    assert r.status_code == 200 and r.json()["encoder"] == CLIP, r.content


def test_the_settings_refuse_an_encoder_whose_package_is_missing(project, api, alice, no_open_clip):
    r = api(alice).patch(_settings(project), {"encoder": CLIP}, format="json")
    assert r.status_code == 400, r.content
    assert "needs the open_clip package, which is not installed" in str(r.json())
    assert Project.objects.get(pk=project.pk).encoder == "auto"
    r = api(alice).patch(_settings(project), {"encoder": "timm/convnext_tiny"}, format="json")
    assert r.status_code == 200  # timm is still there


def test_the_settings_page_marks_encoders_without_their_package(project, client, alice, no_open_clip):
    client.force_login(alice)
    body = client.get(reverse("project-settings", args=[project.pk])).content.decode()
    assert "CLIP ViT-B/32 (LAION-2B, open_clip; zero-shot guesses) — package open_clip not installed" in body
    assert "ConvNeXt-Tiny (ImageNet-12k, timm)<" in body


def test_auto_passes_by_and_a_chosen_one_fails_with_what_to_do(project, alice, weights_dir, settings, no_open_clip):
    from tests.annotator.modelloop.test_backbone import add_photos
    from tests.annotator.modelloop.trainer_helpers import fast_trainer_settings

    weights_dir.mkdir()
    (weights_dir / catalog.PRETRAINED[CLIP].weight_files[0]).write_bytes(b"weights")
    assert backbone.choose(project, (40, 3)) is None  # auto: the only weights present are unusable
    fast_trainer_settings(settings, EMBED_WORKERS=0)
    Project.objects.filter(pk=project.pk).update(encoder=CLIP)  # chosen while the package was there
    add_photos(project, 24)
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    failed = ModelVersion.objects.get(project=project, status="failed")
    assert "needs the open_clip package, which is not installed" in failed.error
    assert "pip install open-clip-torch" in failed.error
    trainer.release()
