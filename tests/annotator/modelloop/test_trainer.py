"""The trainer loop on tiny generated images: versions, queue, guesses, resume, failures,
leases and the two speeds."""
import numpy as np
import pytest
from django.utils import timezone

from annotator.labeling.answers import submit_annotation, undo_last
from annotator.labeling.leasing import lease_next
from annotator.modelloop import arrays, errors, neighbours, predictions, results
from annotator.modelloop.status import audit_accuracy, trainer_status
from annotator.modelloop.trainer import Trainer
from annotator.models import Annotation, Item, LabelClass, Lease, ModelVersion, QueueEntry, TrainerState
from mlcore.checkpoint import load_checkpoint
from tests.annotator.modelloop.trainer_helpers import SHAPES, add_shape_items, fast_versions, label_served


def test_it_pretrains_then_publishes_a_cold_start_queue(shapes):
    published = []
    trainer = Trainer("t1", publish=lambda pk, m: published.append(m))
    trainer.run_once()
    pretrain = ModelVersion.objects.get(project=shapes, kind="pretrain")
    assert pretrain.number == 1 and pretrain.checkpoint
    ck = load_checkpoint(str(predictions.artifact_path(pretrain.checkpoint)))
    assert ck["meta"]["classes"] == SHAPES
    trainer.run_once()
    state = TrainerState.objects.get(project=shapes)
    assert state.phase == "up-to-date" and state.current_version.kind == "fast"
    queue = list(QueueEntry.objects.filter(project=shapes).order_by("rank"))
    assert len(queue) == shapes.query_batch_size
    assert {shapes.truth[q.item_id] for q in queue} == set(SHAPES)  # coverage of the cold start
    assert any(m["type"] == "queue.updated" for m in published)
    assert any(m["type"] == "trainer.status" and m["status"]["phase"] == "pretraining" for m in published)
    graph = neighbours.load(state.current_version)  # the kNN graph's first rows, for bulk labeling
    assert graph is not None and len(graph.pool_index) == Item.objects.filter(project=shapes).count()
    assert graph.idx.shape[1] >= 1 and (np.asarray(graph.idx) != np.arange(len(graph.idx))[:, None]).all()


def test_served_items_follow_the_queue_and_carry_the_guess(shapes, bob):
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    trainer.run_once()
    first = QueueEntry.objects.filter(project=shapes).order_by("rank").first()
    assert lease_next(shapes, bob).item_id == first.item_id
    Lease.objects.all().delete()
    label_served(shapes, bob, 6)
    trainer.run_once()
    version = fast_versions(shapes).order_by("-number").first()
    assert version.labels_used == 6
    lease = lease_next(shapes, bob)
    assert lease.model_version == version
    assert set(lease.suggestion) == {"label", "confidence", "top"}
    assert lease.suggestion["label"] in SHAPES and len(lease.suggestion["top"]) == 3
    probs = np.load(predictions.artifact_path(version.artifact_dir) / "probs.npy")
    row = probs[lease.item.pool_index]
    assert lease.suggestion["label"] == SHAPES[int(row.argmax())]
    assert lease.suggestion["confidence"] == pytest.approx(float(row.max()), abs=1e-4)
    answer = submit_annotation(shapes, bob, item_id=lease.item_id, label="bar", idempotency_key="x")
    assert answer.annotation.model_version == version


def test_nothing_runs_again_until_the_labels_change(shapes, bob):
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    trainer.run_once()
    count = ModelVersion.objects.count()
    assert trainer.run_once() is False
    assert ModelVersion.objects.count() == count
    label_served(shapes, bob, 1)
    assert trainer.run_once() is True
    assert fast_versions(shapes).order_by("-number").first().labels_used == 1


def test_an_undo_is_seen_by_the_next_fast_path(shapes, bob):
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    label_served(shapes, bob, 3)
    trainer.run_once()
    undo_last(shapes, bob)
    trainer.run_once()
    assert fast_versions(shapes).order_by("-number").first().labels_used == 2


def test_a_new_trainer_resumes_from_the_checkpoint(shapes, bob):
    first = Trainer("t1", publish=lambda *a: None)
    first.run_once()
    first.run_once()
    first.release()
    label_served(shapes, bob, 4)
    second = Trainer("t2", publish=lambda *a: None)
    second.run_once()  # resume (no second pretraining)
    second.run_once()
    assert ModelVersion.objects.filter(project=shapes, kind="pretrain").count() == 1
    assert fast_versions(shapes).order_by("-number").first().labels_used == 4
    assert TrainerState.objects.get(project=shapes).owner == "t2"


def test_imported_images_and_new_classes_reach_the_model(shapes, bob):
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    trainer.run_once()
    add_shape_items(shapes, 9, seed=7)
    LabelClass.objects.create(project=shapes, name="blank", order=9)
    label_served(shapes, bob, 2)
    trainer.run_once()
    version = fast_versions(shapes).order_by("-number").first()
    assert version.pool_size == 69 and version.classes == SHAPES + ["blank"]
    assert np.load(predictions.artifact_path(version.artifact_dir) / "probs.npy").shape == (69, 4)
    assert version.metrics["embedded"] == 9  # only the imported images went through the encoder


def test_a_trainer_that_lost_its_lease_writes_nothing(shapes):
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    TrainerState.objects.filter(project=shapes).update(owner="other", lease_expires_at=timezone.now())
    model = trainer.held[shapes.pk].model
    labels = -np.ones(model.size, dtype=np.int64)
    with pytest.raises(errors.LostLease):
        results.commit_version(shapes, "t1", kind="fast", model=model, labels=labels, durations={}, metrics={},
                                queue=[0, 1])
    assert not QueueEntry.objects.exists()
    trainer.heartbeat()
    trainer.run_once()
    assert shapes.pk not in trainer.held


def test_a_second_trainer_waits_until_the_lease_expires(shapes):
    first, second = Trainer("t1", publish=lambda *a: None), Trainer("t2", publish=lambda *a: None)
    assert first.claim() == [shapes.pk]
    assert second.claim() == []
    TrainerState.objects.filter(project=shapes).update(lease_expires_at=timezone.now())  # t1 died
    assert second.claim() == [shapes.pk]
    first.heartbeat()
    assert shapes.pk in first.lost


def test_a_failing_run_is_recorded_backs_off_and_stops(shapes, bob, settings, monkeypatch):
    settings.TRAINER_MAX_FAILURES = 2
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()

    def broken(*args, **kwargs):
        raise RuntimeError("propagation exploded")

    monkeypatch.setattr(results, "fast_path", broken)
    trainer.run_once()
    failed = ModelVersion.objects.get(project=shapes, status="failed")
    assert "propagation exploded" in failed.error and failed.number is None
    state = TrainerState.objects.get(project=shapes)
    assert state.failures == 1 and state.retry_at > timezone.now()
    assert trainer.run_once() is False  # backing off
    TrainerState.objects.filter(project=shapes).update(retry_at=timezone.now())
    trainer.run_once()
    state.refresh_from_db()
    assert state.failures == 2 and state.phase == "failed"
    assert "propagation exploded" in trainer_status(shapes)["error"]
    TrainerState.objects.filter(project=shapes).update(retry_at=timezone.now())
    assert trainer.run_once() is False  # stopped: waits for new data
    monkeypatch.undo()
    label_served(shapes, bob, 1)
    assert trainer.run_once() is True
    state.refresh_from_db()
    assert state.failures == 0 and state.phase == "up-to-date"


def test_the_slow_path_runs_in_the_background_and_keeps_new_labels(shapes, bob, settings):
    settings.TRAINER_SLOW_EVERY = 4
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    trainer.run_once()
    label_served(shapes, bob, 20)  # fine-tuning holds out 10 labels to judge the result on
    trainer.run_once()  # fast path with 20 labels
    trainer.run_once()  # starts the fine-tuning thread
    loop = trainer.held[shapes.pk]
    assert loop.slow is not None
    label_served(shapes, bob, 2, prefix="during")
    trainer.run_once()  # a fast path while fine-tuning
    assert fast_versions(shapes).order_by("-number").first().labels_used == 22
    loop.slow_thread.join(60)
    trainer.run_once()  # adopts the result
    slow = ModelVersion.objects.get(project=shapes, kind="slow")
    assert slow.labels_used == 20 and "accepted" in slow.metrics
    assert slow.metrics["selection"]["heldout"] == 10  # no audits here: a random 10 of the 20
    assert slow.metrics["encoder"] == "self-supervised"
    assert slow.metrics["embedded"] == (slow.pool_size if slow.metrics["adopted"] else 0)
    if slow.metrics["accepted"]:
        load_checkpoint(str(predictions.artifact_path(slow.checkpoint)))
    trainer.run_once()
    assert fast_versions(shapes).order_by("-number").first().labels_used == 22


def test_old_probability_files_are_pruned(shapes, bob, settings):
    settings.TRAINER_KEEP_VERSIONS = 2
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    for i in range(5):
        label_served(shapes, bob, 1, prefix=f"p{i}-")
        trainer.run_once()
    with_files = fast_versions(shapes).exclude(artifact_dir="")
    assert with_files.count() <= 3  # the current one + 2 kept
    for version in with_files:
        assert (predictions.artifact_path(version.artifact_dir) / "pool_index.npy").exists()
    assert predictions.current(shapes) is not None


def test_audit_accuracy_matches_a_naive_count(shapes, bob):
    rng = np.random.default_rng(0)
    items = list(Item.objects.filter(project=shapes)[:30])
    outcomes = []
    for i, item in enumerate(items):
        guess_right = bool(rng.random() < 0.7)
        truth = shapes.truth[item.pk]
        guess = truth if guess_right else next(s for s in SHAPES if s != truth)
        Annotation.objects.create(item=item, annotator=bob, label=LabelClass.objects.get(project=shapes, name=truth),
                                  idempotency_key=f"a{i}", is_audit=i % 3 != 0,
                                  suggestion={"label": guess, "confidence": 0.5, "top": []})
        if i % 3 != 0:
            outcomes.append(guess_right)
    result = audit_accuracy(shapes)
    n, k = len(outcomes), sum(outcomes)
    assert result["n"] == n and result["correct"] == k
    # naive Wilson interval, written out
    z, p = 1.96, k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert result["low"] == pytest.approx(centre - half) and result["high"] == pytest.approx(centre + half)


def test_status_says_when_no_trainer_runs(shapes):
    status = trainer_status(shapes)
    assert status["phase"] == "waiting" and "No trainer" in status["detail"]


def test_the_labels_array_takes_the_majority_and_soft_votes(shapes, bob, alice, dave):
    items = list(Item.objects.filter(project=shapes).order_by("pool_index")[:2])
    cls = {c.name: c for c in LabelClass.objects.filter(project=shapes)}
    for user, label in ((alice, "bar"), (bob, "column"), (dave, "column")):
        Annotation.objects.create(item=items[0], annotator=user, label=cls[label], idempotency_key=f"m-{user}")
    for user, label in ((alice, "square"), (bob, "bar")):
        Annotation.objects.create(item=items[1], annotator=user, label=cls[label], idempotency_key=f"t-{user}")
    pool_index = np.array(sorted(Item.objects.filter(project=shapes).values_list("pool_index", flat=True)))
    ids, _names = arrays.ordered_class_ids(shapes)
    labels, soft = arrays.label_arrays(shapes, pool_index, ids)
    assert labels[0] == SHAPES.index("column")
    assert labels[1] == SHAPES.index("square")  # a tie goes to the earliest answer
    assert (labels[2:] == -1).all()
    assert soft[0].tolist() == pytest.approx([1 / 3, 2 / 3, 0])
    assert soft[2].sum() == 0


def test_a_new_batch_skips_items_annotators_hold(shapes, alice, bob):
    shapes.query_batch_size = 3
    shapes.save()
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    label_served(shapes, alice, 3)  # the cold-start batch is answered
    trainer.run_once()
    first = lease_next(shapes, bob)
    prefetched = lease_next(shapes, bob, exclude=[first.item_id])
    held = {first.item_id, prefetched.item_id, lease_next(shapes, alice).item_id}
    assert results.queue_is_spent(shapes, shapes.strategy)  # every queued item is held now
    label_served(shapes, alice, 1, prefix="more")  # alice answers her held item
    trainer.run_once()
    queue = set(QueueEntry.objects.filter(project=shapes).values_list("item_id", flat=True))
    assert len(queue) == 3 and not queue & {first.item_id, prefetched.item_id}
    assert not queue & held


def test_a_corrected_label_reaches_the_model(shapes, bob):
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    label_served(shapes, bob, 3)
    trainer.run_once()
    assert trainer.run_once() is False
    answer = Annotation.objects.filter(item__project=shapes, undone=False).first()
    other = LabelClass.objects.filter(project=shapes).exclude(pk=answer.label_id).first()
    Annotation.objects.filter(pk=answer.pk).update(label=other)  # an owner's correction
    assert trainer.run_once() is True
    version = fast_versions(shapes).order_by("-number").first()
    labels = np.load(predictions.artifact_path(version.artifact_dir) / "probs.npy").argmax(1)
    assert labels[answer.item.pool_index] == SHAPES.index(other.name)


def test_a_checkpoint_in_the_older_format_still_resumes(shapes, bob):
    """Checkpoints the bridge wrote itself before `ActiveLearner.save` (encoder and head
    only, no projection or probabilities) resume like the new ones."""
    from mlcore.checkpoint import save_checkpoint

    first = Trainer("t1", publish=lambda *a: None)
    first.run_once()
    first.run_once()
    first.release()
    pretrain = ModelVersion.objects.get(project=shapes, kind="pretrain")
    path = predictions.artifact_path(pretrain.checkpoint)
    ck = load_checkpoint(str(path))
    assert {"side", "channels", "classes", "pool_index_file", "version"} <= set(ck["meta"])
    old_state = {"encoder": ck["state"]["encoder"]}
    old_arrays = {k: ck["arrays"][k] for k in ("emb", "graph_idx", "graph_sims", "labels")}
    old_meta = {k: ck["meta"][k] for k in ("version", "classes", "side", "channels", "pool_index_file")}
    save_checkpoint(str(path), ck["config"], old_state, old_arrays, old_meta)
    label_served(shapes, bob, 4)
    second = Trainer("t2", publish=lambda *a: None)
    second.run_once()  # resume from the older file (no second pretraining)
    second.run_once()
    assert ModelVersion.objects.filter(project=shapes, kind="pretrain").count() == 1
    assert fast_versions(shapes).order_by("-number").first().labels_used == 4
    model = second.held[shapes.pk].model
    assert model.base_checkpoint == pretrain.checkpoint and model.learner.version == old_meta["version"]
    assert model.learner.has_encoder
    np.testing.assert_array_equal(model.learner.embeddings, old_arrays["emb"])


def test_the_pool_is_decoded_once_into_its_pixel_store_and_read_from_disk(shapes, bob, settings, monkeypatch):
    """TRAINER_POOL_MEMORY_MB=0: the learner reads batches from the pixel store. A restart
    decodes no image, an import only its new ones."""
    from annotator.modelloop import pixels
    from mlcore.pixelpool import PixelPool

    settings.TRAINER_POOL_MEMORY_MB = 0
    decoded = []
    real = pixels.load_images
    monkeypatch.setattr(pixels, "load_images", lambda paths, *a: decoded.append(len(paths)) or real(paths, *a))
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    trainer.run_once()
    assert sum(decoded) == 60
    model = trainer.held[shapes.pk].model
    assert isinstance(model.images, PixelPool) and len(model.images) == 60
    trainer.release()

    decoded.clear()
    again = Trainer("t2", publish=lambda *a: None)
    label_served(shapes, bob, 3)
    again.run_once()  # resume
    again.run_once()
    assert decoded == [] and fast_versions(shapes).order_by("-number").first().labels_used == 3
    add_shape_items(shapes, 9, seed=7)
    label_served(shapes, bob, 1, prefix="more")
    again.run_once()
    assert sum(decoded) == 9
    version = fast_versions(shapes).order_by("-number").first()
    assert version.pool_size == 69 and version.metrics["embedded"] == 9
    again.release()
