"""A step's results into the database: artifact files first (atomically), then in one
transaction the model version row, the ranked queue and the trainer state, fenced on the
trainer's lease and the model generation. A kill at any moment leaves the previous version
and queue in place, never half of a new one. Also the fast path that produces them, on the
learner's public methods (`fast_update`, `rank`, `heldout_probabilities`)."""
import os
import shutil
import time
import uuid
import weakref
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from annotator.modelloop import baseline, shared
from annotator.modelloop.errors import LostLease, StorageFull, Superseded, one_line
from annotator.modelloop.neighbours import NEIGHBOUR_SIMS_FILE, NEIGHBOURS_FILE, NEIGHBOURS_K
from annotator.modelloop.predictions import (
    HELDOUT_ITEMS_FILE,
    HELDOUT_LABELS_FILE,
    HELDOUT_PROBS_FILE,
    POOL_INDEX_FILE,
    PROBS_FILE,
    artifact_path,
)
from annotator.modelloop.set_path import fast_path_sets
from annotator.models import ModelVersion, Project, QueueEntry, TrainerState
from annotator.storage import is_disk_full
from mlcore.checkpoint import atomic_write
from mlcore.fast import apply_temperature, fit_temperature, heldout_scores
from mlcore.propagation import certainty_weights
from mlcore.zeroshot import blend

ZERO_SHOT = "zero-shot"  # `served_by` of guesses made from the class names alone (no label yet)


def save_array(path, array):
    """np.save through a temporary file, fsync and rename: readers see all or nothing."""
    atomic_write(str(path), lambda fh: np.save(fh, array))


def new_artifact_dir(project, kind):
    return f"projects/{project.pk}/{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


@contextmanager
def writing(folder, what):
    """The files of a new version folder (`folder`, relative to ARTIFACTS_ROOT), written in the
    body: if any write fails the folder goes at once (no row points at it yet, and nothing half
    written waits for prune_artifacts), and a full disk becomes StorageFull, a sentence members
    can read."""
    base = artifact_path(folder)
    try:
        yield base
        shared.publish(folder)  # the files web processes read, into the bucket when there is one
    except BaseException as exc:
        shutil.rmtree(base, ignore_errors=True)
        shared.unpublish(folder)
        if is_disk_full(exc):
            raise StorageFull(what) from exc
        raise


def queue_is_spent(project, strategy):
    """A new batch is ranked when every item of the current one is labeled or held by an
    annotator (so the next batch is ready when they finish), or when the strategy changed.
    Between batches the fast path only refreshes the guesses: re-ranking a diverse batch
    after every label defeats its diversity (measured on 2,000 digits: the first 10 items
    served covered 8 classes as one batch, 6-7 when re-ranked after every 1-5 labels)."""
    from django.db.models import Exists, OuterRef
    from django.utils import timezone

    from annotator.models import Lease

    queue = QueueEntry.objects.filter(project=project)
    first = queue.select_related("version").first()
    if first is None or first.version.strategy != strategy:
        return True
    leased = Lease.objects.filter(item=OuterRef("item"), expires_at__gt=timezone.now())
    return not queue.filter(item__done=False).exclude(Exists(leased)).exists()


def held_rows(project, model):
    """Pool rows of items an annotator holds right now (on screen or prefetched)."""
    from django.utils import timezone

    from annotator.models import Lease

    held = np.fromiter(
        Lease.objects.filter(project=project, expires_at__gt=timezone.now()).values_list("item__pool_index", flat=True),
        dtype=np.int64,
    )
    rows = np.searchsorted(model.pool_index, held)
    ok = rows < len(model.pool_index)
    return rows[ok][model.pool_index[rows[ok]] == held[ok]]


def fast_path(project, model, labels, soft, strategy, batch, rerank=True, held=(), unscored=None, audits=None):
    """Propagation -> probabilities for the pool -> (when `rerank`) a ranked, diverse
    batch. Pure compute; returns queue None when not re-ranked. Items in `held` (rows
    annotators hold now) are ranked as if answered: they are not asked twice, and for the
    cold start their clusters count as covered. Guesses and ranking come from the model's
    representation or, when it wins on held-out labels, from its pixel baseline; with a
    CLIP-like backbone, blended with zero-shot guesses from the class names (`with_zero_shot`).
    `audits` (rows of the audit answers) judge the embedding head's weight once there are
    `head.min_heldout` of them. Rows in `unscored` (bool (N,): items labeled only in bulk) train like any label but are
    left out of every held-out score the loop judges itself by (the cv accuracy, the choice
    of the pixel baseline, the calibration): the model picked them because it was sure.
    A multi-label project's (`labels` its answered marks, `soft` its targets) goes the
    one-vs-rest way (`modelloop.set_path`)."""
    if project.multi_label:
        return fast_path_sets(model, labels, soft, strategy, batch, rerank=rerank, held=held)
    learners = {model.encoder_name: model.learner}
    if model.baseline is not None:
        learners[baseline.PIXELS] = model.baseline.learner
    durations = {}
    n_labels = int((labels >= 0).sum())
    t = time.perf_counter()
    # the head's weight is judged on the audit answers (drawn uniformly at random) once there
    # are enough of them, else on folds of all labels (`EmbeddingLearner.fast_update`)
    judges = audits if audits is not None and len(audits) >= model.learner.cfg.head.min_heldout else None
    probs_of = ({name: learner.fast_update(labels, soft, heldout=judges) for name, learner in learners.items()}
                if n_labels else {})
    durations["propagate_s"] = round(time.perf_counter() - t, 4)
    metrics = {"classes_labeled": int(len(np.unique(labels[labels >= 0])))}
    heldout = None
    num_classes = model.learner.num_classes
    if n_labels >= max(10, 2 * num_classes) and metrics["classes_labeled"] >= 2:
        t = time.perf_counter()
        heldout_of = {name: learner.heldout_probabilities(labels) for name, learner in learners.items()}
        rows, own = heldout_of[model.encoder_name]
        # (L,) bool over the held-out rows: the audit rows once there are enough, else all scored
        scored, _on = judged_rows(rows, scored_rows(rows, unscored), judges, model.learner.cfg.head.min_heldout)
        if scored.any():
            for name, (_rows, p) in heldout_of.items():
                metrics[f"cv_accuracy_{name}"] = round(heldout_scores(labels[rows][scored], p[scored])[0], 4)
        pixels = heldout_of.get(baseline.PIXELS)
        model.served = (baseline.PIXELS if pixels is not None and baseline.pixels_win(
            labels[rows][scored], own[scored], pixels[1][scored]) else model.encoder_name)
        heldout = (rows, heldout_of[model.served][1])
        durations["cv_s"] = round(time.perf_counter() - t, 4)
    served = model.served if model.served in learners else model.encoder_name
    metrics["served_by"] = served
    learner = learners[served]
    choice = learner.head_choice if n_labels else None
    if choice is not None:  # the head's weight w in the guesses, and the held-out evidence for it
        metrics["head"] = choice
    probs = probs_of.get(served)
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
    if heldout is not None:
        rows, heldout_probs = heldout
        scored = scored_rows(rows, unscored)
        # The model line (cv accuracy) and the calibration are judged on the audit answers once
        # there are enough of them: drawn uniformly at random, unlike the strategy's picks
        # (the hard cases), which make up most labels after the cold start.
        scored, metrics["cv_on"] = judged_rows(rows, scored, judges, model.learner.cfg.head.min_heldout)
        metrics["cv_count"] = int(scored.sum())
        if scored.any():
            metrics["cv_accuracy"] = round(heldout_scores(labels[rows][scored], heldout_probs[scored])[0], 4)
        # What annotators and the dashboard see is calibrated on the held-out labels; the
        # learner's own probabilities (ranking, fine-tuning) stay as they are.
        n_scored = n_labels - (int(np.asarray(unscored, bool)[labels >= 0].sum()) if unscored is not None else 0)
        enough = metrics["cv_on"] == "audits" or n_scored >= CALIBRATION_LABELS_PER_CLASS * probs.shape[1]
        if enough and scored.any():
            temperature = fit_temperature(heldout_probs[scored], labels[rows][scored], high=1.0)
            metrics["temperature"] = round(temperature, 4)
            heldout_probs = apply_temperature(heldout_probs, temperature)
            probs = probs.copy()
            open_rows = labels < 0
            probs[open_rows] = apply_temperature(probs[open_rows], temperature)
        heldout = (rows, heldout_probs)
    probs = with_zero_shot(model, probs, labels, metrics)
    if probs is not None:
        metrics["mean_confidence"] = round(float(probs.max(1).mean()), 4)
        metrics["predicted_counts"] = np.bincount(probs.argmax(1), minlength=probs.shape[1]).tolist()
        metrics.update(pool_summary(probs, labels))
    return probs, queue, durations, metrics, heldout


def judged_rows(rows, scored, audits, least):
    """(which held-out rows judge the model, "audits" or "folds"): the scored audit rows when
    there are at least `least` of them, else every scored row."""
    if audits is not None:
        audited = scored & np.isin(rows, np.asarray(audits))
        if audited.sum() >= least:
            return audited, "audits"
    return scored, "folds"


def scored_rows(rows, unscored):
    """(L,) bool: which held-out rows count in the loop's scores (all but `unscored` ones)."""
    if unscored is None:
        return np.ones(len(rows), bool)
    return ~np.asarray(unscored, bool)[rows]


def with_zero_shot(model, probs, labels, metrics):
    """The served probabilities blended with the zero-shot guesses of a CLIP-like backbone
    (`model.zero_shot`, set by `bridge.refresh_zero_shot`), per class by the labels it has
    (`mlcore.zeroshot.blend`). Metrics say so: "zero_shot" (whether they took part),
    "zero_shot_weights" (per class), and "served_by" "zero-shot" before the first label."""
    if model.zero_shot is None:
        return probs
    guesses = model.zero_shot.probs(model.learner.embeddings)  # (N, C), on the backbone's vectors
    blended, weights = blend(probs, guesses, labels, settings.ZERO_SHOT_FADE_LABELS)
    metrics["zero_shot"] = bool(weights.any())
    metrics["zero_shot_weights"] = [round(float(w), 4) for w in weights]
    if probs is None:
        metrics["served_by"] = ZERO_SHOT
    return blended


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
    with writing(folder, "the new guesses") as base:
        save_array(base / POOL_INDEX_FILE, model.pool_index)
        if probs is not None:
            save_array(base / PROBS_FILE, probs.astype(np.float32))
        if heldout is not None and labels is not None:
            rows, heldout_probs = heldout
            save_array(base / HELDOUT_ITEMS_FILE, model.item_ids[rows].astype(np.int64))
            save_array(base / HELDOUT_LABELS_FILE, labels[rows].astype(np.int64))
            save_array(base / HELDOUT_PROBS_FILE, heldout_probs.astype(np.float32))
        write_neighbours(base, model)
    return folder


def write_neighbours(base, model):
    """The first NEIGHBOURS_K neighbours of each pool row in the served learner's kNN graph
    (rows int32, similarities float16), for "similar images" and bulk labeling. The graph
    changes only with the embeddings, so while the learner and its graph version are the
    ones of the previous write, the new folder hard-links the previous files (no copy, no
    second 6 bytes x N x K); a link that fails (pruned folder, another file system) writes
    them again."""
    learner = model.learner
    if model.served == baseline.PIXELS and model.baseline is not None:
        learner = model.baseline.learner
    if learner is None or not learner.has_features:
        return
    files = (NEIGHBOURS_FILE, NEIGHBOUR_SIMS_FILE)
    previous = model.extra.get("neighbours")
    if previous is not None and previous[0]() is learner and previous[1:3] == (learner.version, model.size):
        try:
            for name in files:
                os.link(previous[3] / name, base / name)
            model.extra["neighbours"] = (*previous[:3], base)
            return
        except OSError:
            for name in files:
                (base / name).unlink(missing_ok=True)
    idx, sims = learner.neighbours(NEIGHBOURS_K)  # (N, K) rows and cosine similarities
    save_array(base / NEIGHBOURS_FILE, idx.astype(np.int32))
    save_array(base / NEIGHBOUR_SIMS_FILE, sims.astype(np.float16))
    model.extra["neighbours"] = (weakref.ref(learner), learner.version, model.size, base)


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
    """A failed run: its row (with the error's last line: members see it, so never the
    traceback, which `error` may be and which goes to the log) and a backoff, so a broken
    project is retried a few times and then waits for new data instead of looping."""
    error = one_line(error) or f"The {kind} run failed; the trainer's log has the details."
    with transaction.atomic():
        state = TrainerState.objects.select_for_update().get(project=project)
        if state.owner != trainer:
            return None
        ModelVersion.objects.create(project=project, kind=kind, status=ModelVersion.Status.FAILED,
                                    error=error, trainer=trainer)
        state.failures += 1
        state.last_error = error
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
        shared.unpublish(folder)
        ModelVersion.objects.filter(pk=pk).update(artifact_dir="")
    referenced = {Path(a).name for a in live.exclude(artifact_dir="").values_list("artifact_dir", flat=True)}
    referenced |= {Path(c).parent.name for c in live.exclude(checkpoint="").values_list("checkpoint", flat=True)}
    referenced.add(shared.UPLOADS)  # uploaded starting checkpoints: steering removes them when replaced
    cutoff = time.time() - 600  # a folder being written right now is younger than this
    for child in root.iterdir():
        if child.is_dir() and child.name not in referenced and child.stat().st_mtime < cutoff:
            shutil.rmtree(child, ignore_errors=True)
            shared.unpublish(f"projects/{project.pk}/{child.name}")
