"""The trainer follows an owner's steering: pause and resume, reset (a new generation: the
held model is dropped, results computed for the old one are not written), start from an
uploaded checkpoint (no contrastive pretraining), and the held-out arrays the dashboard reads."""
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.access import Invalid
from annotator.modelloop import errors, predictions, results
from annotator.modelloop.status import trainer_status
from annotator.modelloop.steering import reset_model, set_paused, upload_checkpoint
from annotator.modelloop.trainer import Trainer
from annotator.models import ModelVersion, Project, QueueEntry, TrainerState
from annotator.projects.changes import create_project
from mlcore.checkpoint import load_checkpoint
from tests.annotator.modelloop.trainer_helpers import SHAPES, fast_versions, label_served


def quiet_trainer(name="t1"):
    return Trainer(name, publish=lambda *a: None)


def test_a_paused_project_runs_nothing_until_resumed(shapes, alice, bob):
    trainer = quiet_trainer()
    trainer.run_once()
    trainer.run_once()
    label_served(shapes, bob, 6)
    set_paused(shapes, True)
    count = ModelVersion.objects.count()
    for _ in range(3):
        trainer.run_once()
    assert ModelVersion.objects.count() == count
    state = TrainerState.objects.get(project=shapes)
    assert state.phase == "paused" and trainer_status(shapes)["phase"] == "paused"
    set_paused(shapes, False)
    trainer.run_once()
    newest = fast_versions(shapes).order_by("-number").first()
    assert newest.labels_used == 6  # the labels given while paused are learned on resume
    assert TrainerState.objects.get(project=shapes).phase == "up-to-date"


def test_a_reset_drops_the_model_and_starts_a_new_generation(shapes, alice, bob):
    trainer = quiet_trainer()
    trainer.run_once()
    trainer.run_once()
    label_served(shapes, bob, 6)
    trainer.run_once()
    old = list(ModelVersion.objects.filter(project=shapes).values_list("pk", flat=True))
    reset_model(shapes, by=alice)
    assert not QueueEntry.objects.filter(project=shapes).exists()
    assert predictions.current(shapes) is None
    trainer.run_once()  # pretrains again: it must not resume the old generation's checkpoint
    pretrains = ModelVersion.objects.filter(project=shapes, kind="pretrain").order_by("number")
    assert pretrains.count() == 2 and pretrains.last().generation == 1
    trainer.run_once()
    state = TrainerState.objects.get(project=shapes)
    assert state.current_version.generation == 1 and state.current_version.labels_used == 6
    assert ModelVersion.objects.filter(pk__in=old, generation=0).count() == len(old)
    # A restarted trainer resumes the new generation, not the old one.
    other = quiet_trainer("t2")
    trainer.release()
    other.run_once()
    assert other.held[shapes.pk].model.base_checkpoint == pretrains.last().checkpoint


def test_a_result_for_a_reset_model_is_not_written(shapes, alice, bob):
    trainer = quiet_trainer()
    trainer.run_once()
    trainer.run_once()
    loop = trainer.held[shapes.pk]
    reset_model(shapes, by=alice)
    labels = np.full(loop.model.size, -1)
    with pytest.raises(errors.Superseded):
        results.commit_version(shapes, trainer.name, kind=ModelVersion.Kind.FAST, model=loop.model, labels=labels,
                                durations={}, metrics={}, generation=loop.generation)
    assert TrainerState.objects.get(project=shapes).current_version is None


def _exported_checkpoint(project):
    version = ModelVersion.objects.filter(project=project).exclude(checkpoint="").order_by("-number").first()
    return predictions.artifact_path(version.checkpoint).read_bytes()


def test_it_starts_from_an_uploaded_checkpoint_without_pretraining(shapes, alice, bob, settings):
    trainer = quiet_trainer()
    trainer.run_once()
    data = _exported_checkpoint(shapes)
    trainer.release()
    other = create_project(alice, name="Shapes again", classes=SHAPES, audit_fraction=0.0)
    from tests.annotator.modelloop.trainer_helpers import add_shape_items

    add_shape_items(other, 40, seed=5)
    report = upload_checkpoint(other, SimpleUploadedFile("shapes.pt", data), by=alice)
    assert report["matched"] == report["total"] > 0 and report["classes"] == SHAPES
    settings.TRAINER_PRETRAIN_BUDGET_S = 600  # pretraining would take this long: it must not run
    trainer2 = Trainer("t2", slugs=[other.slug], publish=lambda *a: None)
    trainer2.run_once()
    pretrain = ModelVersion.objects.get(project=other, kind="pretrain")
    assert pretrain.metrics["init_checkpoint"] == "shapes.pt"
    assert pretrain.durations["pretrain_s"] < 60
    model = trainer2.held[other.pk].model
    import torch

    source = load_checkpoint(str(predictions.artifact_path(Project.objects.get(pk=other.pk).init_checkpoint)))
    for name, tensor in source["state"]["encoder"].items():
        assert torch.equal(model.learner.encoder.state_dict()[name].cpu(), tensor)


def test_the_fast_path_writes_heldout_arrays_and_pool_summary(shapes, bob):
    trainer = quiet_trainer()
    trainer.run_once()
    trainer.run_once()
    label_served(shapes, bob, 18)  # 5 per class or more: the served probabilities are calibrated
    trainer.run_once()
    version = fast_versions(shapes).order_by("-number").first()
    assert version.labels_used == 18
    metrics = version.metrics
    assert sum(metrics["uncertainty_hist"]) == metrics["unlabeled"] == 60 - 18
    assert sum(metrics["predicted_unlabeled"]) == 42 and len(metrics["predicted_unlabeled"]) == len(SHAPES)
    assert 0 < metrics["temperature"] <= 1
    held = predictions.heldout(version)
    assert held is not None and len(held.items) == 18 and held.probs.shape == (18, len(SHAPES))
    np.testing.assert_allclose(np.asarray(held.probs).sum(1), 1, atol=1e-5)
    truth = [SHAPES.index(shapes.truth[int(i)]) for i in held.items]
    assert list(held.labels) == truth
    assert metrics["cv_accuracy"] == pytest.approx(float((np.asarray(held.probs).argmax(1) == truth).mean()), abs=1e-4)
    # What is served is calibrated with the temperature fitted on the held-out labels; the
    # learner keeps its own probabilities, and labeled rows stay their answers.
    from mlcore.fast import apply_temperature

    learner = trainer.held[shapes.pk].model.learner
    served = np.load(predictions.artifact_path(version.artifact_dir) / "probs.npy")
    open_rows = np.asarray(learner.last.probs).max(1) < 1
    np.testing.assert_allclose(served[open_rows], apply_temperature(learner.last.probs[open_rows], metrics["temperature"]),
                               atol=2e-3)
    np.testing.assert_array_equal(served.argmax(1), learner.last.probs.argmax(1))


def test_pool_summary_matches_a_direct_count():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50).astype(np.float32)
    labels = np.full(50, -1)
    labels[:7] = 1
    summary = results.pool_summary(probs, labels)
    open_probs = probs[7:]
    entropy = -(open_probs * np.log(open_probs)).sum(1) / np.log(4)
    expected = [int(((entropy >= i / 20) & ((entropy < (i + 1) / 20) | (i == 19))).sum()) for i in range(20)]
    assert summary["uncertainty_hist"] == expected
    assert summary["predicted_unlabeled"] == [int((open_probs.argmax(1) == c).sum()) for c in range(4)]
    assert summary["unlabeled"] == 43
    assert summary["uncertainty_mean"] == pytest.approx(float(entropy.mean()), abs=1e-3)


def test_a_checkpoint_declaring_an_absurd_encoder_is_refused_before_it_is_built(project, alice, tmp_path):
    from mlcore.checkpoint import save_checkpoint
    from mlcore.presets import recommended_config

    cfg = recommended_config(3, 20, 1)
    cfg.encoder.widths = (16, 32, 10**7)  # would allocate gigabytes if built
    path = tmp_path / "huge.pt"
    save_checkpoint(str(path), cfg, {"encoder": {}}, {}, {})
    with pytest.raises(Invalid, match="does not build"):
        upload_checkpoint(project, SimpleUploadedFile("huge.pt", path.read_bytes()), by=alice)
    project.refresh_from_db()
    assert project.model_generation == 0 and not project.init_checkpoint


def test_stopping_waits_for_a_fine_tuning_in_flight(shapes, bob, settings):
    """A fine-tuning thread still inside torch at interpreter exit aborts the process
    (SIGABRT instead of a clean exit 0): run() returns only once the cancelled thread stopped."""
    settings.TRAINER_SLOW_EVERY = 4
    settings.TRAINER_SLOW_BUDGET_S = 60
    trainer = quiet_trainer()
    trainer.run_once()
    trainer.run_once()
    label_served(shapes, bob, 20)  # fewer labels: nothing to hold out, so no fine-tuning
    trainer.run_once()
    trainer.run_once()  # starts the fine-tuning thread
    thread = trainer.held[shapes.pk].slow_thread
    assert thread is not None and thread.is_alive()
    trainer.stop.set()
    trainer.run()  # the shutdown path only: stop is already set
    assert not thread.is_alive()
