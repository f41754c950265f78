"""Owners steer the model loop: pause and resume training, reset the model, start it from an
uploaded checkpoint, and review the labels the model doubts (keep or relabel). Through the
settings and dashboard pages (plain posts and htmx) and through the REST API."""
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotator.modelloop import predictions
from annotator.modelloop.status import trainer_status
from annotator.modelloop.steering import reset_model, set_paused
from annotator.models import (
    Annotation,
    AnnotationChange,
    Item,
    ModelVersion,
    Project,
    QueueEntry,
    TrainerState,
)
from annotator.projects.changes import create_project

HX = {"HTTP_HX_REQUEST": "true"}


# --- helpers ------------------------------------------------------------------------------------


def _fresh(project):
    return Project.objects.get(pk=project.pk)


def _state(project):
    return TrainerState.objects.get(project=project)


def _api(project, suffix):
    return f"/api/projects/{project.pk}/{suffix}"


def _uploads(project):
    """Every file (temporary ones included) in the project's checkpoint upload folder."""
    folder = Path(settings.ARTIFACTS_ROOT) / f"projects/{project.pk}/uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _answer(item, user, name, key, **extra):
    return Annotation.objects.create(item=item, annotator=user, label=item.project.classes.get(name=name),
                                     idempotency_key=key, **extra)


def _publish(project, items, *, heldout=None):
    """A current model version with guesses for `items` and a queue over them (what the
    trainer writes); `heldout`: (items, label columns, probabilities) for the suspects."""
    folder = f"test/{project.pk}/v1"
    path = Path(settings.ARTIFACTS_ROOT) / folder
    path.mkdir(parents=True)
    c = project.classes.count()
    np.save(path / predictions.PROBS_FILE, np.full((len(items), c), 1.0 / c, dtype=np.float32))
    np.save(path / predictions.POOL_INDEX_FILE, np.array([i.pool_index for i in items], dtype=np.int64))
    if heldout is not None:
        rows, labels, probs = heldout
        np.save(path / predictions.HELDOUT_ITEMS_FILE, np.array([i.pk for i in rows], dtype=np.int64))
        np.save(path / predictions.HELDOUT_LABELS_FILE, np.array(labels, dtype=np.int64))
        np.save(path / predictions.HELDOUT_PROBS_FILE, np.array(probs, dtype=np.float32))
    version = ModelVersion.objects.create(project=project, number=1, kind="fast", pool_size=len(items),
                                          classes=project.class_names(), artifact_dir=folder,
                                          generation=_fresh(project).model_generation)
    TrainerState.objects.update_or_create(project=project, defaults={"current_version": version})
    for rank, item in enumerate(items):
        QueueEntry.objects.create(project=project, item=item, rank=rank, version=version)
    predictions._cache.clear()  # version ids are reused between tests
    return version


def _our_checkpoint(classes=("zero", "one", "two")):
    """A checkpoint in this app's own format (what the model export writes): config, the
    encoder's weights and the class names."""
    from mlcore.checkpoint import save_checkpoint
    from mlcore.models.encoders import build_encoder
    from mlcore.presets import recommended_config

    cfg = recommended_config(3, 20, 1)
    path = Path(settings.ARTIFACTS_ROOT).parent / "export.pt"
    save_checkpoint(str(path), cfg, {"encoder": build_encoder(cfg.encoder).state_dict()}, {}, {"classes": list(classes)})
    return path.read_bytes()


def _saved(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _project_encoder_state():
    """The state dict of the encoder a project of 32x24 RGB images gets (modelloop.bridge.new_config)."""
    from mlcore.models.encoders import build_encoder
    from mlcore.presets import recommended_config

    return build_encoder(recommended_config(3, 24, 3).encoder).state_dict()


def _file(data, name="model.pt"):
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def _upload_api(client, project, data, name="model.pt"):
    return client.post(_api(project, "model/checkpoint/"), {"checkpoint": _file(data, name)}, format="multipart")


def _unchanged_checkpoint(project):
    fresh = _fresh(project)
    assert (fresh.model_generation, fresh.init_checkpoint, fresh.init_checkpoint_name) == (0, "", "")
    assert _uploads(project) == []


@pytest.fixture
def pool(project, make_items):
    """Four 32x24 RGB images: the encoder's input size depends on them."""
    return make_items(4)


@pytest.fixture
def stored_checkpoint(project):
    """A project that starts from an uploaded checkpoint (the file under ARTIFACTS_ROOT)."""
    relative = f"projects/{project.pk}/uploads/abc.pt"
    path = predictions.artifact_path(relative)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    Project.objects.filter(pk=project.pk).update(init_checkpoint=relative, init_checkpoint_name="mnist.pt")
    return path


# --- pause and resume ---------------------------------------------------------------------------


def test_owner_pauses_and_resumes_on_the_settings_page(client, project, alice):
    client.force_login(alice)
    url = reverse("model-pause", args=[project.pk])

    r = client.post(url, {"paused": "1"})
    assert r.status_code == 302 and r["Location"] == reverse("project-settings", args=[project.pk]) + "#model"
    assert _fresh(project).training_paused is True
    assert _state(project).phase == TrainerState.Phase.PAUSED
    status = trainer_status(project)  # no trainer holds a lease: still "paused", not "waiting"
    assert (status["phase"], status["phase_label"]) == ("paused", "Paused")
    assert "paused" in status["detail"]
    assert "Training paused." in client.get(reverse("project-settings", args=[project.pk])).content.decode()

    assert client.post(url, {"paused": "0"}).status_code == 302
    assert _fresh(project).training_paused is False
    assert _state(project).phase == TrainerState.Phase.WAITING
    assert trainer_status(project)["phase"] == "waiting"


def test_pausing_twice_is_harmless(client, project, alice):
    client.force_login(alice)
    for _ in range(2):
        assert client.post(reverse("model-pause", args=[project.pk]), {"paused": "true"}).status_code == 302
    assert _fresh(project).training_paused is True and _state(project).phase == "paused"


def test_owner_pauses_with_htmx_and_gets_the_model_region(client, project, alice):
    client.force_login(alice)
    r = client.post(reverse("model-pause", args=[project.pk]), {"paused": "on"}, **HX)
    body = r.content.decode()
    assert r.status_code == 200
    assert body.lstrip().startswith('<section id="model"') and "<html" not in body
    assert "Training paused." in body and 'id="model-resume"' in body and "<strong>Paused</strong>" in body

    r = client.post(reverse("model-pause", args=[project.pk]), {"paused": "0"}, **HX)
    body = r.content.decode()
    assert "Training resumed." in body and 'id="model-pause"' in body
    assert _fresh(project).training_paused is False


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_members_who_are_not_owners_see_the_model_without_controls(client, project, who, request):
    set_paused(project, True)
    client.force_login(request.getfixturevalue(who))
    body = client.get(reverse("project-settings", args=[project.pk])).content.decode()
    assert 'id="model"' in body and "<strong>Paused</strong>" in body
    for name in ("model-pause", "model-reset", "model-checkpoint"):
        assert reverse(name, args=[project.pk]) not in body


def test_a_paused_project_shows_paused_even_while_a_trainer_holds_it(project):
    from django.utils import timezone

    TrainerState.objects.update_or_create(project=project, defaults={
        "owner": "trainer-1", "lease_expires_at": timezone.now() + timezone.timedelta(minutes=5),
        "phase": TrainerState.Phase.TRAINING, "progress": 0.5,
    })
    set_paused(project, True)
    state = _state(project)
    assert (state.phase, state.progress) == ("paused", None)
    assert trainer_status(project)["phase"] == "paused"


def test_resuming_leaves_a_failed_phase_alone(project):
    TrainerState.objects.update_or_create(project=project, defaults={"phase": TrainerState.Phase.FAILED})
    set_paused(project, False)
    assert _state(project).phase == "failed"


def test_the_settings_api_shows_and_sets_training_paused(project, api, alice, bob):
    url = _api(project, "settings/")
    body = api(bob).get(url).json()
    assert (body["training_paused"], body["model_generation"], body["init_checkpoint"]) == (False, 0, None)

    r = api(alice).patch(url, {"training_paused": True}, format="json")
    assert r.status_code == 200 and r.json()["training_paused"] is True
    assert _fresh(project).training_paused is True
    assert trainer_status(project)["phase"] == "paused"
    assert api(bob).get(url).json()["training_paused"] is True
    assert api(alice).get(_api(project, "status/")).json()["phase"] == "paused"


def test_the_settings_api_resumes_together_with_other_fields(project, api, alice):
    set_paused(project, True)
    r = api(alice).patch(_api(project, "settings/"), {"training_paused": False, "strategy": "margin",
                                                       "query_batch_size": 5}, format="json")
    assert r.status_code == 200
    assert (r.json()["training_paused"], r.json()["strategy"], r.json()["query_batch_size"]) == (False, "margin", 5)
    fresh = _fresh(project)
    assert (fresh.training_paused, fresh.strategy, fresh.query_batch_size) == (False, "margin", 5)
    assert _state(project).phase == "waiting"


def test_an_invalid_settings_patch_does_not_pause(project, api, alice):
    r = api(alice).patch(_api(project, "settings/"), {"training_paused": True, "query_batch_size": 0}, format="json")
    assert r.status_code == 400
    assert _fresh(project).training_paused is False
    r = api(alice).patch(_api(project, "settings/"), {"training_paused": "maybe"}, format="json")
    assert r.status_code == 400 and "training_paused" in r.json()
    assert _fresh(project).training_paused is False


# --- reset --------------------------------------------------------------------------------------


@pytest.fixture
def trained(project, make_items, alice, bob):
    """Four images, two labeled, a current model version serving guesses and a queue."""
    items = make_items(4)
    _answer(items[0], bob, "one", "k0")
    _answer(items[1], alice, "two", "k1")
    _publish(project, items)
    assert predictions.current(project) is not None and QueueEntry.objects.filter(project=project).count() == 4
    return items


def _labels(project):
    return sorted(Annotation.objects.filter(item__project=project).values_list("item_id", "annotator__username",
                                                                                 "label__name", "undone"))


def test_owner_resets_the_model_on_the_settings_page(client, project, alice, trained, stored_checkpoint):
    before = _labels(project)
    client.force_login(alice)
    r = client.post(reverse("model-reset", args=[project.pk]))
    assert r.status_code == 302 and r["Location"].endswith("#model")
    fresh = _fresh(project)
    assert fresh.model_generation == 1
    assert not QueueEntry.objects.filter(project=project).exists()
    state = _state(project)
    assert state.current_version is None and state.phase == "waiting"
    assert "alice" in state.detail and "mnist.pt" in state.detail
    assert predictions.current(project) is None
    assert _labels(project) == before
    assert ModelVersion.objects.filter(project=project).count() == 1  # old versions stay listed
    # without clear_checkpoint the uploaded checkpoint stays the starting point
    assert (fresh.init_checkpoint_name, stored_checkpoint.exists()) == ("mnist.pt", True)


def test_reset_with_htmx_forgets_the_checkpoint_when_asked(client, project, alice, trained, stored_checkpoint,
                                                          django_capture_on_commit_callbacks):
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):  # the file goes once the row forgets it
        r = client.post(reverse("model-reset", args=[project.pk]), {"clear_checkpoint": "1"}, **HX)
    body = r.content.decode()
    assert r.status_code == 200 and body.lstrip().startswith('<section id="model"')
    assert "The model was reset" in body and "contrastive pretraining" in body and "mnist.pt" not in body
    fresh = _fresh(project)
    assert (fresh.model_generation, fresh.init_checkpoint, fresh.init_checkpoint_name) == (1, "", "")
    assert not stored_checkpoint.exists()
    assert predictions.current(project) is None


def test_reset_through_the_api(project, api, alice, trained, stored_checkpoint, django_capture_on_commit_callbacks):
    before = _labels(project)
    r = api(alice).post(_api(project, "model/reset/"), {}, format="json")
    assert r.status_code == 200
    assert (r.json()["model_generation"], r.json()["init_checkpoint"]) == (1, "mnist.pt")
    assert stored_checkpoint.exists()
    assert predictions.current(project) is None and not QueueEntry.objects.filter(project=project).exists()
    assert _state(project).current_version is None

    with django_capture_on_commit_callbacks(execute=True):
        r = api(alice).post(_api(project, "model/reset/"), {"clear_checkpoint": True}, format="json")
    assert r.status_code == 200
    assert (r.json()["model_generation"], r.json()["init_checkpoint"]) == (2, None)
    assert not stored_checkpoint.exists()
    assert _fresh(project).init_checkpoint == ""
    assert _labels(project) == before
    assert api(alice).get(_api(project, "status/")).json()["version"] is None


def test_owner_changes_the_encoder_on_the_settings_page_and_the_model_starts_over(client, project, alice, trained):
    before = _labels(project)
    client.force_login(alice)
    r = client.post(reverse("model-encoder", args=[project.pk]), {"encoder": "resnet18"}, **HX)
    body = r.content.decode()
    assert r.status_code == 200 and body.lstrip().startswith('<section id="model"')
    assert "The encoder is now ResNet-18" in body
    fresh = _fresh(project)
    assert (fresh.encoder, fresh.model_generation) == ("resnet18", 1)
    assert predictions.current(project) is None and not QueueEntry.objects.filter(project=project).exists()
    assert "ResNet-18" in _state(project).detail
    assert _labels(project) == before
    # the same encoder again changes nothing
    r = client.post(reverse("model-encoder", args=[project.pk]), {"encoder": "resnet18"}, **HX)
    assert "unchanged" in r.content.decode() and _fresh(project).model_generation == 1


def test_an_unknown_encoder_is_refused_with_the_choices(client, project, alice, trained):
    client.force_login(alice)
    r = client.post(reverse("model-encoder", args=[project.pk]), {"encoder": "alexnet"}, **HX)
    body = r.content.decode()
    assert "Unknown encoder" in body and "dinov2_vits14" in body
    assert (_fresh(project).encoder, _fresh(project).model_generation) == ("auto", 0)
    assert predictions.current(project) is not None


def test_the_settings_api_shows_and_changes_the_encoder(project, api, alice, trained):
    assert api(alice).get(_api(project, "settings/")).json()["encoder"] == "auto"
    r = api(alice).patch(_api(project, "settings/"), {"encoder": "dinov2_vits14"}, format="json")
    assert r.status_code == 200, r.content
    assert (r.json()["encoder"], r.json()["model_generation"]) == ("dinov2_vits14", 1)
    r = api(alice).patch(_api(project, "settings/"), {"encoder": "alexnet"}, format="json")
    assert r.status_code == 400 and "encoder" in r.json()
    assert _fresh(project).encoder == "dinov2_vits14"


def test_a_reset_keeps_a_paused_project_paused(project, alice):
    set_paused(project, True)
    reset_model(project, by=alice)
    assert _fresh(project).training_paused is True
    assert _state(project).phase == "paused" and trainer_status(project)["phase"] == "paused"


def test_a_stale_version_is_not_shown_as_the_model_after_a_reset(project, api, alice, trained):
    """The dashboard ignores a version of an older generation."""
    reset_model(project, by=alice)
    TrainerState.objects.filter(project=project).update(current_version=ModelVersion.objects.get(project=project))
    assert api(alice).get(_api(project, "dashboard/")).json()["model"]["version"] is None


# --- checkpoint upload --------------------------------------------------------------------------


def test_owner_uploads_a_checkpoint_of_our_own_format(project, api, alice, pool):
    r = _upload_api(api(alice), project, _our_checkpoint(), "mnist export.pt")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["name"] == "mnist export.pt"
    assert body["matched"] == body["total"] > 0
    assert body["architecture"] == "small_cnn" and body["classes"] == ["zero", "one", "two"]
    fresh = _fresh(project)
    assert (fresh.model_generation, fresh.init_checkpoint_name) == (1, "mnist export.pt")
    stored = predictions.artifact_path(fresh.init_checkpoint)
    assert stored.is_file() and stored.is_relative_to(Path(settings.ARTIFACTS_ROOT))
    assert _uploads(project) == [stored.name]  # no temporary file left beside it
    assert "starting over from mnist export.pt" in _state(project).detail
    assert api(alice).get(_api(project, "settings/")).json()["init_checkpoint"] == "mnist export.pt"


def test_a_second_upload_replaces_the_first_file(project, api, alice, pool):
    assert _upload_api(api(alice), project, _our_checkpoint(), "a.pt").status_code == 200
    first = _fresh(project).init_checkpoint
    assert _upload_api(api(alice), project, _saved(_project_encoder_state()), "b.pth").status_code == 200
    fresh = _fresh(project)
    assert (fresh.model_generation, fresh.init_checkpoint_name) == (2, "b.pth")
    assert fresh.init_checkpoint != first and not predictions.artifact_path(first).exists()
    assert _uploads(project) == [Path(fresh.init_checkpoint).name]


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": sd},
    lambda sd: {f"module.{k}": v for k, v in sd.items()},
], ids=["plain", "state_dict-key", "module-prefix"])
def test_a_plain_state_dict_of_the_same_encoder_fits(project, api, alice, pool, wrap):
    r = _upload_api(api(alice), project, _saved(wrap(_project_encoder_state())), "resnet.ckpt")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["matched"] == body["total"] > 0 and body["classes"] is None
    assert _fresh(project).init_checkpoint_name == "resnet.ckpt"


def test_a_plain_state_dict_needs_images_first(project, api, alice):
    r = _upload_api(api(alice), project, _saved(_project_encoder_state()))
    assert r.status_code == 400 and "Import images first" in r.json()["detail"]
    _unchanged_checkpoint(project)


def test_owner_uploads_on_the_settings_page(client, project, alice, pool):
    client.force_login(alice)
    url = reverse("model-checkpoint", args=[project.pk])
    r = client.post(url, {"checkpoint": _file(_our_checkpoint(), "mine.pt")})
    assert r.status_code == 302 and r["Location"].endswith("#model")
    assert _fresh(project).init_checkpoint_name == "mine.pt"
    page = client.get(reverse("project-settings", args=[project.pk])).content.decode()
    assert "Loaded mine.pt" in page and "<code>mine.pt</code>" in page

    r = client.post(url, {"checkpoint": _file(_our_checkpoint(), "again.pt")}, **HX)
    body = r.content.decode()
    assert r.status_code == 200 and body.lstrip().startswith('<section id="model"')
    assert "Loaded again.pt" in body and "The model starts over from it." in body
    assert _fresh(project).model_generation == 2


def test_the_page_asks_for_a_file(client, project, alice, pool):
    client.force_login(alice)
    r = client.post(reverse("model-checkpoint", args=[project.pk]), {}, **HX)
    assert r.status_code == 200 and "Choose a checkpoint file" in r.content.decode()
    _unchanged_checkpoint(project)


def test_garbage_is_refused_with_a_reason_and_changes_nothing(project, api, alice, pool):
    r = _upload_api(api(alice), project, b"\x00not a checkpoint at all" * 10, "x.pt")
    assert r.status_code == 400
    assert r.json()["detail"].startswith("x.pt: This is not a PyTorch checkpoint that loads with weights_only=True")
    _unchanged_checkpoint(project)


def test_garbage_on_the_page_shows_the_reason_in_the_region(client, project, alice, pool):
    client.force_login(alice)
    r = client.post(reverse("model-checkpoint", args=[project.pk]), {"checkpoint": _file(b"junk" * 50, "x.pt")}, **HX)
    body = r.content.decode()
    assert r.status_code == 200 and 'role="alert"' in body and "not a PyTorch checkpoint" in body
    _unchanged_checkpoint(project)


def test_a_wrong_suffix_is_refused(project, api, alice, pool):
    r = _upload_api(api(alice), project, _our_checkpoint(), "weights.txt")
    assert r.status_code == 400
    assert "weights.txt does not look like a PyTorch checkpoint" in r.json()["detail"] and ".pt" in r.json()["detail"]
    _unchanged_checkpoint(project)


def test_an_empty_file_is_refused(client, project, api, alice, pool):
    assert _upload_api(api(alice), project, b"", "empty.pt").status_code == 400
    _unchanged_checkpoint(project)
    client.force_login(alice)
    r = client.post(reverse("model-checkpoint", args=[project.pk]), {"checkpoint": _file(b"", "empty.pt")}, **HX)
    assert "empty.pt is empty." in r.content.decode()
    _unchanged_checkpoint(project)


def test_a_file_over_the_limit_is_refused(project, api, alice, pool, settings):
    settings.CHECKPOINT_UPLOAD_MAX_MB = 1
    r = _upload_api(api(alice), project, b"\x00" * (1024 * 1024 + 1), "big.pt")
    assert r.status_code == 400
    assert "big.pt is" in r.json()["detail"] and "up to 1 MB" in r.json()["detail"]
    _unchanged_checkpoint(project)


def test_the_size_refusal_does_not_contradict_itself(project, api, alice, pool, settings):
    """Just over a 1 MB limit: the message must not say the file "is 1 MB" (rounding)."""
    settings.CHECKPOINT_UPLOAD_MAX_MB = 1
    detail = _upload_api(api(alice), project, b"\x00" * (1024 * 1024 + 1), "big.pt").json()["detail"]
    stated = re.search(r"is ([\d.]+) MB", detail)
    assert stated is None or float(stated.group(1)) > 1, detail


class _RunsCode:
    """Unpickling this opens (creates) a file: code running from the checkpoint."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(project, api, alice, pool, tmp_path):
    marker = tmp_path / "pwned"
    payload = _saved({"conv.weight": torch.zeros(3), "payload": _RunsCode(marker)})
    # the payload is live: a plain (unsafe) load would create the marker
    control = tmp_path / "control"
    torch.load(io.BytesIO(_saved(_RunsCode(control))), weights_only=False).close()
    assert control.exists()

    r = _upload_api(api(alice), project, payload, "evil.pt")
    assert r.status_code == 400
    assert "weights_only=True" in r.json()["detail"]
    assert not marker.exists()
    _unchanged_checkpoint(project)


def test_a_state_dict_of_another_architecture_is_refused(project, api, alice, pool):
    r = _upload_api(api(alice), project, _saved(torch.nn.Linear(7, 5).state_dict()), "linear.pt")
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith("linear.pt: No tensor in this checkpoint fits the project's encoder (small_cnn, 3 channels)")
    _unchanged_checkpoint(project)


@pytest.mark.parametrize("arch, tensors", [("resnet18", 122), ("resnet50", 320)])
def test_a_stock_torchvision_state_dict_loads_every_tensor(project, api, alice, pool, arch, tensors):
    import torchvision

    stock = getattr(torchvision.models, arch)(weights=None).state_dict()
    r = _upload_api(api(alice), project, _saved(stock), f"{arch}-imagenet.pth")
    assert r.status_code == 200, r.content
    assert (r.json()["architecture"], r.json()["matched"], r.json()["total"]) == (arch, tensors, tensors)
    assert _fresh(project).init_checkpoint_name == f"{arch}-imagenet.pth"


def test_a_stock_state_dict_that_does_not_load_is_refused_with_the_tensors(project, api, alice, pool):
    import torchvision

    stock = torchvision.models.resnet18(weights=None).state_dict()
    stock["layer4.1.conv2.weight"] = stock["layer4.1.conv2.weight"][:, :7]  # a torn tensor
    r = _upload_api(api(alice), project, _saved(stock), "resnet18.pth")
    assert r.status_code == 400 and "layer4.1.conv2.weight" in r.json()["detail"]
    _unchanged_checkpoint(project)


def test_the_api_asks_for_a_file(project, api, alice, pool):
    r = api(alice).post(_api(project, "model/checkpoint/"), {}, format="multipart")
    assert r.status_code == 400 and "checkpoint" in r.json()
    _unchanged_checkpoint(project)


# --- reviewing suspect labels -------------------------------------------------------------------


@pytest.fixture
def answered(project, make_items, alice, bob):
    """item 0: alice and bob said "one"; item 1: alice "one", bob "two"; item 2: bob's "zero"
    was undone, alice said "one"; item 3: only a skip."""
    items = make_items(4)
    _answer(items[0], alice, "one", "a0")
    _answer(items[0], bob, "one", "b0")
    _answer(items[1], alice, "one", "a1")
    _answer(items[1], bob, "two", "b1")
    _answer(items[2], bob, "zero", "b2", undone=True)
    _answer(items[2], alice, "one", "a2")
    Annotation.objects.create(item=items[3], annotator=bob, skipped=True, idempotency_key="b3")
    return items


def _review_api(client, project, item, body=None):
    pk = item.pk if hasattr(item, "pk") else item
    return client.post(_api(project, f"items/{pk}/review/"), body or {}, format="json")


def _item_labels(item):
    return sorted(Annotation.objects.filter(item=item).values_list("annotator__username", "label__name", "undone"))


def test_keep_marks_the_item_reviewed_and_changes_nothing_else(project, api, alice, answered):
    before = _item_labels(answered[1])
    r = _review_api(api(alice), project, answered[1])
    assert r.status_code == 200 and r.json() == {"item": answered[1].pk, "changed": 0, "label": None}
    item = Item.objects.get(pk=answered[1].pk)
    assert item.reviewed_at is not None and item.reviewed_by == alice
    assert _item_labels(item) == before
    assert not AnnotationChange.objects.exists()
    assert (item.label_count, item.done) == (answered[1].label_count, answered[1].done)
    assert Item.objects.filter(reviewed_at__isnull=False).count() == 1

    assert _review_api(api(alice), project, answered[0], {"label": ""}).json()["changed"] == 0  # empty: keep too
    assert _review_api(api(alice), project, answered[0], {"label": None}).json()["changed"] == 0


def test_relabel_changes_every_live_label_with_its_history(project, api, alice, answered):
    r = _review_api(api(alice), project, answered[0], {"label": "two"})
    assert r.status_code == 200 and r.json() == {"item": answered[0].pk, "changed": 2, "label": "two"}
    assert _item_labels(answered[0]) == [("alice", "two", False), ("bob", "two", False)]
    changes = AnnotationChange.objects.filter(annotation__item=answered[0])
    assert sorted((c.annotation.annotator.username, c.action, c.old_label, c.new_label, c.changed_by.username)
                  for c in changes) == [
        ("alice", "correct", "one", "two", "alice"), ("bob", "correct", "one", "two", "alice"),
    ]
    assert Item.objects.get(pk=answered[0].pk).reviewed_by == alice


def test_relabel_answers_with_the_class_name_not_the_spelling_sent(client, project, api, alice, answered):
    """Class names match ignoring case; the answer and the notice name the class applied."""
    r = _review_api(api(alice), project, answered[0], {"label": "TWO"})
    assert r.status_code == 200 and r.json()["label"] == "two"
    assert AnnotationChange.objects.filter(annotation__item=answered[0]).first().new_label == "two"
    client.force_login(alice)
    body = client.post(reverse("item-review", args=[project.pk, answered[1].pk]), {"label": "Zero"}, **HX).content.decode()
    assert "Relabeled as zero (2 labels changed)." in body


def test_relabel_counts_only_labels_that_change(project, api, alice, answered):
    r = _review_api(api(alice), project, answered[1], {"label": "two"})
    assert r.json()["changed"] == 1
    assert _item_labels(answered[1]) == [("alice", "two", False), ("bob", "two", False)]
    assert AnnotationChange.objects.count() == 1


def test_relabel_leaves_undone_answers_alone(project, api, alice, answered):
    assert _review_api(api(alice), project, answered[2], {"label": "two"}).json()["changed"] == 1
    assert _item_labels(answered[2]) == [("alice", "two", False), ("bob", "zero", True)]


def test_an_unknown_class_is_refused_naming_the_classes(project, api, alice, answered):
    r = _review_api(api(alice), project, answered[0], {"label": "seven"})
    assert r.status_code == 400
    assert "'seven'" in r.json()["detail"] and "zero, one, two" in r.json()["detail"]
    assert Item.objects.get(pk=answered[0].pk).reviewed_at is None
    assert _item_labels(answered[0]) == [("alice", "one", False), ("bob", "one", False)]


def test_an_item_without_a_live_label_is_a_conflict(project, api, alice, answered, make_items):
    assert _review_api(api(alice), project, answered[3]).status_code == 409  # only a skip
    r = _review_api(api(alice), project, make_items(1)[0], {"label": "one"})  # never labeled
    assert r.status_code == 409 and "no live label" in r.json()["detail"]
    assert not Item.objects.filter(reviewed_at__isnull=False).exists()


def test_an_item_of_another_project_is_not_found(project, api, alice, answered, make_items, client):
    other = create_project(alice, name="Other", classes=["zero", "one", "two"])
    foreign = make_items(1, target=other)[0]
    _answer(foreign, alice, "one", "f0")
    assert _review_api(api(alice), project, foreign, {"label": "two"}).status_code == 404
    assert _review_api(api(alice), project, 987654).status_code == 404
    assert _review_api(api(alice), project, "99999999999999999999").status_code == 404
    client.force_login(alice)
    url = reverse("item-review", args=[project.pk, foreign.pk])
    assert client.post(url, {"label": "two"}, **HX).status_code == 404
    assert client.post(url, {"label": "two"}).status_code == 404
    assert _item_labels(foreign) == [("alice", "one", False)] and Item.objects.get(pk=foreign.pk).reviewed_at is None


def test_the_htmx_review_returns_the_done_row(client, project, alice, answered):
    client.force_login(alice)
    url = reverse("item-review", args=[project.pk, answered[0].pk])
    r = client.post(url, {"label": ""}, **HX)
    body = r.content.decode()
    assert r.status_code == 200
    assert body.startswith(f'<tr id="suspect-{answered[0].pk}" class="suspect-done">') and "<html" not in body
    assert "Kept as labeled." in body
    assert Item.objects.get(pk=answered[0].pk).reviewed_by == alice

    body = client.post(reverse("item-review", args=[project.pk, answered[1].pk]), {"label": "zero"}, **HX).content.decode()
    assert "Relabeled as zero (2 labels changed)." in body
    body = client.post(reverse("item-review", args=[project.pk, answered[2].pk]), {"label": "one"}, **HX).content.decode()
    assert "Relabeled as one (0 labels changed)." in body


def test_the_htmx_review_shows_a_refusal_in_the_row(client, project, alice, answered):
    client.force_login(alice)
    r = client.post(reverse("item-review", args=[project.pk, answered[3].pk]), {"label": ""}, **HX)
    body = r.content.decode()
    assert 'class="suspect-done"' in body and 'role="alert"' in body and "no live label" in body
    r = client.post(reverse("item-review", args=[project.pk, answered[0].pk]), {"label": "seven"}, **HX)
    assert "Unknown class" in r.content.decode()
    assert not Item.objects.filter(reviewed_at__isnull=False).exists()


def test_the_other_class_select_wins_over_the_empty_label_button(client, project, alice, answered):
    client.force_login(alice)
    client.post(reverse("item-review", args=[project.pk, answered[0].pk]), {"label": "", "other": "zero"}, **HX)
    assert _item_labels(answered[0]) == [("alice", "zero", False), ("bob", "zero", False)]
    # an untouched select ("Other class…", empty) leaves the button's class
    client.post(reverse("item-review", args=[project.pk, answered[1].pk]), {"label": "two", "other": ""}, **HX)
    assert _item_labels(answered[1]) == [("alice", "two", False), ("bob", "two", False)]


def test_a_plain_review_post_redirects_to_the_suspects(client, project, alice, answered):
    client.force_login(alice)
    r = client.post(reverse("item-review", args=[project.pk, answered[0].pk]), {"label": "two"})
    assert r.status_code == 302
    assert r["Location"] == reverse("project-dashboard", args=[project.pk]) + "#dash-suspects"
    r = client.post(reverse("item-review", args=[project.pk, answered[3].pk]), {"label": ""}, follow=True)
    assert "no live label" in r.content.decode()


def test_a_reviewed_item_leaves_the_suspect_list(client, project, api, alice, dave, answered):
    """The model (with the label held out) is sure item 0 is a "zero" and item 1 a "two"."""
    _publish(project, answered, heldout=(
        answered[:2], [1, 1], [[0.95, 0.03, 0.02], [0.05, 0.05, 0.9]],
    ))
    suspects = api(dave).get(_api(project, "dashboard/")).json()["model"]["suspects"]
    assert [(s["item"], s["human"], s["guess"]) for s in suspects] == [
        (answered[0].pk, "one", "zero"), (answered[1].pk, "one", "two"),
    ]
    client.force_login(alice)
    page = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    assert reverse("item-review", args=[project.pk, answered[0].pk]) in page and "Relabel as zero" in page
    client.force_login(dave)
    assert reverse("item-review", args=[project.pk, answered[0].pk]) not in client.get(
        reverse("project-dashboard", args=[project.pk])).content.decode()

    assert _review_api(api(alice), project, answered[0]).status_code == 200  # kept
    assert _review_api(api(alice), project, answered[1], {"label": "two"}).status_code == 200
    model = api(dave).get(_api(project, "dashboard/")).json()["model"]
    assert model["suspects"] == [] and model["suspects_flagged"] == 2


# --- who may do it ------------------------------------------------------------------------------


def _page_posts(project, item):
    return [
        (reverse("model-pause", args=[project.pk]), {"paused": "1"}),
        (reverse("model-reset", args=[project.pk]), {"clear_checkpoint": "1"}),
        (reverse("model-checkpoint", args=[project.pk]), {"checkpoint": _file(b"junk", "x.pt")}),
        (reverse("item-review", args=[project.pk, item.pk]), {"label": "two"}),
    ]


def _untouched(project, item):
    fresh = _fresh(project)
    assert (fresh.training_paused, fresh.model_generation, fresh.init_checkpoint_name) == (False, 0, "mnist.pt")
    assert Item.objects.get(pk=item.pk).reviewed_at is None
    assert _item_labels(item) == [("alice", "one", False), ("bob", "one", False)]
    assert not AnnotationChange.objects.exists()


@pytest.mark.parametrize("who, expected", [("bob", 403), ("dave", 403), ("charlie", 404)])
def test_pages_refuse_members_who_are_not_owners(client, project, answered, stored_checkpoint, who, expected, request):
    client.force_login(request.getfixturevalue(who))
    for url, data in _page_posts(project, answered[0]):
        assert client.post(url, data).status_code == expected, url
        assert client.post(url, data, **HX).status_code == expected, url
    _untouched(project, answered[0])
    assert stored_checkpoint.exists()


def test_pages_send_anonymous_callers_to_sign_in(client, project, answered, stored_checkpoint):
    for url, data in _page_posts(project, answered[0]):
        r = client.post(url, data)
        assert r.status_code == 302 and r["Location"].startswith(reverse("login")), url
    _untouched(project, answered[0])


def test_pages_take_only_posts(client, project, alice, answered):
    client.force_login(alice)
    for url, _data in _page_posts(project, answered[0]):
        assert client.get(url).status_code == 405, url


def _api_calls(project, item):
    return [
        ("patch", _api(project, "settings/"), {"training_paused": True}, "json"),
        ("post", _api(project, "model/reset/"), {"clear_checkpoint": True}, "json"),
        ("post", _api(project, "model/checkpoint/"), {"checkpoint": _file(b"junk", "x.pt")}, "multipart"),
        ("post", _api(project, f"items/{item.pk}/review/"), {"label": "two"}, "json"),
    ]


@pytest.mark.parametrize("who, expected", [("bob", 403), ("dave", 403), ("charlie", 404), (None, 401)])
def test_the_api_refuses_everyone_but_owners(project, api, answered, stored_checkpoint, who, expected, request):
    client = api(request.getfixturevalue(who) if who else None)
    for method, url, body, fmt in _api_calls(project, answered[0]):
        assert getattr(client, method)(url, body, format=fmt).status_code == expected, url
    _untouched(project, answered[0])
    assert stored_checkpoint.exists()


def test_owner_passes_the_permission_check_everywhere(client, project, api, alice, answered, stored_checkpoint):
    """Allowed: every page and API call gets past the permission check (the checkpoint
    itself is junk, so that one is refused for its content, 400)."""
    codes = [getattr(api(alice), m)(url, body, format=fmt).status_code for m, url, body, fmt in _api_calls(project, answered[0])]
    assert codes == [200, 200, 400, 200]
    client.force_login(alice)
    codes = [client.post(url, data, **HX).status_code for url, data in _page_posts(project, answered[1])]
    assert codes == [200, 200, 200, 200]


@pytest.mark.parametrize("who, expected", [("alice", 200), ("dave", 200), ("bob", 403), ("charlie", 404), (None, 401)])
def test_the_dashboard_api_is_for_owners_and_viewers(project, api, who, expected, request):
    r = api(request.getfixturevalue(who) if who else None).get(_api(project, "dashboard/"))
    assert r.status_code == expected
    if expected == 200:
        body = r.json()
        assert {"progress", "per_class", "annotators", "agreement", "model", "fields"} <= set(body)
        assert body["model"]["suspects"] == [] and body["model"]["version"] is None
