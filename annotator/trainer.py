"""The model loop: trainer processes claim projects and keep their models up to date.

A trainer owns a project while its lease in `TrainerState` is fresh; a heartbeat thread
renews the leases every third of TRAINER_LEASE_SECONDS. Claims lock rows with
SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL (SQLite serialises writers), so two
trainers never hold the same project; a dead trainer's projects are claimed by another
once its lease has expired, and resume from the last checkpoint.

Per project, two speeds (see DESIGN.md):
1. cold start: contrastive pretraining on the pool (progress shown), embeddings, kNN
   graph, checkpoint, first queue by typicality + coverage;
2. fast path when the labels changed: propagation -> probabilities -> ranked diverse
   batch -> one transaction swaps the queue (a model version each time);
3. slow path, debounced, in a background thread on a copy of the model: fine-tuning,
   new embeddings and graph; the fast path keeps running meanwhile, and the labels that
   arrived during the slow run are used by the next fast path after the swap.
"""
import copy
import logging
import os
import socket
import threading
import time
import traceback
from concurrent.futures import Future
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import events, services
from .mlbridge import Superseded
from .models import Item, ModelVersion, Project, TrainerState

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """Stop now: shutting down, or the project's lease was lost."""


def default_name():
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def _row_lock(qs):
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True)
    return qs.select_for_update()


class Trainer:
    def __init__(self, name=None, *, slugs=None, max_projects=None, device=None, publish=None):
        self.name = name or default_name()
        self.slugs = set(slugs or [])
        self.max_projects = max_projects
        self.device = device
        self.publish = publish or events.publish
        self.stop = threading.Event()
        self.held = {}  # project id -> ProjectLoop
        self.lost = set()  # project ids whose lease the heartbeat could not renew
        self._lock = threading.Lock()

    # --- leases ------------------------------------------------------------------------

    def claim(self):
        """Take free or expired projects (up to max_projects held). Returns new project ids."""
        now = timezone.now()
        room = None if self.max_projects is None else self.max_projects - len(self.held)
        if room is not None and room <= 0:
            return []
        candidates = Project.objects.filter(items__isnull=False).distinct()
        if self.slugs:
            candidates = candidates.filter(slug__in=self.slugs)
        missing = candidates.filter(trainer_state__isnull=True).values_list("pk", flat=True)
        TrainerState.objects.bulk_create([TrainerState(project_id=pk) for pk in missing], ignore_conflicts=True)
        claimed = []
        with transaction.atomic():
            qs = TrainerState.objects.filter(project__in=candidates).exclude(project_id__in=list(self.held))
            qs = qs.filter(Q(owner="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(owner=self.name))
            for state in _row_lock(qs.order_by("project_id"))[:room] if room else _row_lock(qs.order_by("project_id")):
                state.owner = self.name
                state.lease_expires_at = now + timedelta(seconds=settings.TRAINER_LEASE_SECONDS)
                state.heartbeat_at = now
                state.save(update_fields=["owner", "lease_expires_at", "heartbeat_at", "updated_at"])
                claimed.append(state.project_id)
        for pk in claimed:
            self.held[pk] = ProjectLoop(self, pk)
            log.info("Trainer %s took project %s", self.name, pk)
        return claimed

    def heartbeat(self):
        """Renew every held lease; a lease that could not be renewed is lost."""
        held = list(self.held)
        if not held:
            return
        now = timezone.now()
        expires = now + timedelta(seconds=settings.TRAINER_LEASE_SECONDS)
        TrainerState.objects.filter(project_id__in=held, owner=self.name).update(lease_expires_at=expires, heartbeat_at=now)
        mine = set(TrainerState.objects.filter(project_id__in=held, owner=self.name).values_list("project_id", flat=True))
        with self._lock:
            self.lost |= set(held) - mine

    def release(self):
        TrainerState.objects.filter(project_id__in=list(self.held), owner=self.name).update(
            owner="", lease_expires_at=None
        )
        for pk in list(self.held):
            self._publish_status(pk)
        self.held.clear()

    def _heartbeat_loop(self):
        period = max(0.5, settings.TRAINER_LEASE_SECONDS / 3)
        try:
            while not self.stop.wait(period):
                try:
                    self.heartbeat()
                except Exception:  # noqa: BLE001 - a database hiccup: try again next period
                    log.warning("Trainer %s heartbeat failed", self.name, exc_info=True)
        finally:
            connection.close()

    # --- the loop ------------------------------------------------------------------------

    def run(self):
        """Until `stop` is set: claim, work on each held project, drop lost ones."""
        beat = threading.Thread(target=self._heartbeat_loop, name="trainer-heartbeat", daemon=True)
        beat.start()
        log.info("Trainer %s started", self.name)
        try:
            while not self.stop.is_set():
                close_old_connections()
                try:
                    busy = self.run_once()
                except DatabaseError:  # the database restarted or is locked: wait, then go on
                    log.warning("Trainer %s: database error; retrying shortly", self.name, exc_info=True)
                    connection.close()
                    self.stop.wait(5)
                    continue
                if not busy:
                    self.stop.wait(settings.TRAINER_POLL_SECONDS)
        finally:
            self.stop.set()
            for loop in self.held.values():
                loop.abandon()
            for loop in self.held.values():
                loop.join_slow(timeout=30)
            try:
                self.release()
            finally:
                beat.join(timeout=5)
                connection.close()
            log.info("Trainer %s stopped", self.name)

    def run_once(self):
        """One pass over the held projects; True if any did work."""
        self.claim()
        busy = False
        for pk in list(self.held):
            if self._lost(pk):
                continue
            loop = self.held[pk]
            try:
                busy = loop.step() or busy
            except Interrupted:
                if self.stop.is_set():
                    break
            except Superseded as exc:  # reset or paused meanwhile: the next step follows the project
                log.info("Trainer %s: %s; result dropped", self.name, exc)
            except Exception:  # noqa: BLE001 - recorded on the project; the loop goes on
                loop.failed(traceback.format_exc())
            self._lost(pk)
        return busy

    def _lost(self, pk):
        with self._lock:
            lost = pk in self.lost
            self.lost.discard(pk)
        if lost and pk in self.held:
            log.warning("Trainer %s lost the lease of project %s", self.name, pk)
            self.held.pop(pk).abandon()
        return lost

    def check(self, pk):
        """Raise Interrupted when the trainer stops or lost the project."""
        if self.stop.is_set():
            raise Interrupted("stopping")
        with self._lock:
            if pk in self.lost:
                raise Interrupted("lease lost")

    def _publish_status(self, pk):
        project = Project.objects.filter(pk=pk).first()
        if project is not None:
            self.publish(pk, events.status_event(services.trainer_status(project)))


class ProjectLoop:
    """One project's model and the decisions of when to run which path."""

    def __init__(self, trainer, project_id):
        self.trainer = trainer
        self.project_id = project_id
        self.model = None  # mlbridge.ProjectModel
        self.labels = None  # labels of the last fast path
        self.last_fast = 0.0
        self.last_change = time.monotonic()
        self.slow: Future | None = None
        self.slow_thread = None
        self.data_signature = None  # (items, answers) when the last failure happened
        self.answers = None  # answers_signature of the arrays read last
        self.read = None  # (labels, soft) read last
        self.labels_read_at = 0.0
        self.generation = None  # the project's model_generation the model belongs to
        self.paused = False

    # --- helpers ---------------------------------------------------------------------------

    def project(self):
        return Project.objects.get(pk=self.project_id)

    def set_state(self, **fields):
        TrainerState.objects.filter(project_id=self.project_id, owner=self.trainer.name).update(
            updated_at=timezone.now(), **fields
        )
        self.trainer._publish_status(self.project_id)

    def abandon(self):
        if self.slow_thread is not None:
            self.slow_cancel.set()

    def join_slow(self, timeout):
        """Wait for a cancelled fine-tuning thread to stop (it checks at every step): a
        thread still inside torch while the interpreter shuts down aborts the process."""
        thread = self.slow_thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("Project %s: the fine-tuning thread did not stop within %s s", self.project_id, timeout)

    def forget(self):
        """Drop the model and everything derived from it (after a reset)."""
        self.abandon()
        self.model, self.labels, self.read, self.answers = None, None, None, None
        self.slow, self.slow_thread = None, None
        self.data_signature = None

    def failed(self, error):
        from . import mlbridge

        log.error("Trainer %s: project %s failed:\n%s", self.trainer.name, self.project_id, error)
        project = Project.objects.filter(pk=self.project_id).first()
        if project is None:
            return
        kind = ModelVersion.Kind.PRETRAIN if self.model is None or self.model.learner.encoder is None else ModelVersion.Kind.FAST
        mlbridge.record_failure(project, self.trainer.name, kind, error,
                                max_failures=settings.TRAINER_MAX_FAILURES, backoff_s=5)
        self.data_signature = self._signature(project)
        self.model = None if kind == ModelVersion.Kind.PRETRAIN else self.model
        self.trainer._publish_status(self.project_id)

    def _check_steering(self):
        """Raise Superseded when an owner reset the model or paused training (checked
        during pretraining, which otherwise runs for minutes)."""
        now = Project.objects.filter(pk=self.project_id).values_list("model_generation", "training_paused").first()
        if now is None or now[0] != self.generation or now[1]:
            raise Superseded(f"project {self.project_id}: reset or paused during pretraining")

    def _signature(self, project):
        from . import mlbridge

        return Item.objects.filter(project=project).count(), mlbridge.answers_signature(project)

    def _may_run(self, project):
        """Respect the backoff after failures; after too many, wait for new data."""
        state = TrainerState.objects.get(project=project)
        if state.failures == 0:
            return True
        if state.failures >= settings.TRAINER_MAX_FAILURES:
            return self._signature(project) != self.data_signature
        return state.retry_at is None or state.retry_at <= timezone.now()

    # --- the step ----------------------------------------------------------------------------

    def step(self):
        """Do the most useful thing for the project now; True if something ran."""
        from . import mlbridge

        project = self.project()
        if project.model_generation != self.generation:
            if self.generation is not None:
                log.info("Project %s: model reset; starting over", project.pk)
            self.forget()
            self.generation = project.model_generation
        if project.training_paused:
            if not self.paused:
                self.abandon()  # a fine-tuning in flight is dropped, not adopted later
                self.slow, self.slow_thread = None, None
                self.paused = True
                self.set_state(phase=TrainerState.Phase.PAUSED, progress=None,
                               detail="Training is paused; labeling goes on with the last model's queue.")
            return False
        if self.paused:
            self.paused = False
            self.labels = None  # resume with a fast path on the newest labels
            self.set_state(phase=TrainerState.Phase.TRAINING, progress=None, detail="Resuming.")
        if not self._may_run(project):
            return False
        if self.model is None:
            if Item.objects.filter(project=project).count() < mlbridge.MIN_POOL:
                self.set_state(phase=TrainerState.Phase.WAITING,
                               detail=f"Waiting for at least {mlbridge.MIN_POOL} images.")
                return False
            self.start(project)
            return True
        if self._adopt_slow(project):
            return True
        pool_changed = mlbridge.refresh_pool(project, self.model)
        labels, soft = self._labels(project, pool_changed)
        now = time.monotonic()
        changed = pool_changed or self.labels is None or not np.array_equal(labels, self.labels)
        if changed and self.labels is not None and not pool_changed:
            self.last_change = now
        if changed and now - self.last_fast >= settings.TRAINER_FAST_MIN_INTERVAL_S:
            self.fast(project, labels, soft, rerank=pool_changed or mlbridge.queue_is_spent(project, project.strategy))
            return True
        if (not changed and now - self.last_fast >= 10 * settings.TRAINER_FAST_MIN_INTERVAL_S + 1
                and (labels < 0).any() and mlbridge.queue_is_spent(project, project.strategy)):
            self.fast(project, labels, soft, rerank=True)  # the batch ran out without new labels (skips)
            return True
        if not changed and self.slow is None and self._slow_due(labels, now):
            self.start_slow(project, labels, soft)
            return True
        return False

    def _labels(self, project, pool_changed):
        """The answers as arrays, read again only when their signature moved (and once a
        minute regardless); a poll of an idle project is one aggregate query."""
        from . import mlbridge

        signature = mlbridge.answers_signature(project)
        fresh = time.monotonic() - self.labels_read_at < 60
        if not pool_changed and self.read is not None and signature == self.answers and fresh:
            return self.read
        self.answers, self.labels_read_at = signature, time.monotonic()
        self.read = mlbridge.label_arrays(project, self.model.pool_index, self.model.class_ids)
        return self.read

    def start(self, project):
        """Resume from the newest checkpoint, else pretrain from scratch."""
        from . import mlbridge

        latest = (
            ModelVersion.objects.filter(project=project, status=ModelVersion.Status.OK,
                                        generation=project.model_generation)
            .exclude(checkpoint="").order_by("-number").first()
        )
        if latest is not None:
            self.set_state(phase=TrainerState.Phase.TRAINING, detail=f"Loading model v{latest.number}.", progress=None)
            try:
                self.model = mlbridge.resume(project, latest, self.trainer.device)
                return
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                log.warning("Project %s: checkpoint %s unusable (%s); pretraining again.",
                            project.pk, latest.checkpoint, exc)
        self.pretrain(project)

    def pretrain(self, project):
        from . import mlbridge

        self.set_state(phase=TrainerState.Phase.PRETRAINING, progress=0.0, detail="Loading images.")
        t0 = time.perf_counter()
        model = mlbridge.build(project, self.trainer.device)
        load_s = time.perf_counter() - t0
        device = str(model.learner.device)
        self.set_state(device=device, detail=f"Contrastive pretraining on {model.size} images ({device}).")
        last = [0.0]

        def progress(fraction, info):
            self.trainer.check(self.project_id)
            if time.monotonic() - last[0] >= 1.0:
                last[0] = time.monotonic()
                self._check_steering()
                self.set_state(progress=round(float(fraction), 3),
                               detail=f"Contrastive pretraining: step {info.get('step')}, loss {info.get('loss', 0):.3f}.")

        t1 = time.perf_counter()
        if project.init_checkpoint:
            self.set_state(detail=f"Loading the uploaded encoder {project.init_checkpoint_name or ''} "
                                  f"and embedding {model.size} images ({device}).")
            mlbridge.load_init_checkpoint(project, model)
        else:
            model.learner.pretrain(progress=progress, time_budget_s=settings.TRAINER_PRETRAIN_BUDGET_S)
        pretrain_s = time.perf_counter() - t1
        self.trainer.check(self.project_id)
        labels, _soft = mlbridge.label_arrays(project, model.pool_index, model.class_ids)
        checkpoint = mlbridge.checkpoint_files(project, model, "pretrain", labels)
        model.base_checkpoint = checkpoint
        mlbridge.commit_version(
            project, self.trainer.name, kind=ModelVersion.Kind.PRETRAIN, model=model, labels=labels,
            durations={"load_images_s": round(load_s, 2), "pretrain_s": round(pretrain_s, 2)},
            metrics={"pool_size": model.size, "init_checkpoint": project.init_checkpoint_name or None},
            artifact_dir=str(checkpoint).rsplit("/", 1)[0], checkpoint=checkpoint, make_current=False,
            generation=self.generation, phase=TrainerState.Phase.TRAINING, detail="Pretrained; ranking the pool.",
        )
        model.labels_at_slow = int((labels >= 0).sum())
        self.model = model
        self.labels = None  # forces the first fast path (cold-start queue)

    def fast(self, project, labels, soft, rerank=True):
        from . import mlbridge

        t0 = time.perf_counter()
        batch = max(1, project.query_batch_size)
        held = mlbridge.held_rows(project, self.model) if rerank else ()
        probs, queue, durations, metrics, heldout = mlbridge.fast_path(
            project, self.model, labels, soft, project.strategy, batch, rerank=rerank, held=held)
        self.trainer.check(self.project_id)
        folder = mlbridge.write_probabilities(project, self.model, probs, labels, heldout)
        durations["total_s"] = round(time.perf_counter() - t0, 4)
        version = mlbridge.commit_version(
            project, self.trainer.name, kind=ModelVersion.Kind.FAST, model=self.model, labels=labels,
            durations=durations, metrics=metrics, artifact_dir=folder, checkpoint="", queue=queue,
            strategy=project.strategy, generation=self.generation,
            phase=TrainerState.Phase.TRAINING if self.slow is not None else TrainerState.Phase.UP_TO_DATE,
            detail="Fine-tuning in the background." if self.slow is not None else "",
        )
        self.labels = labels
        self.last_fast = time.monotonic()
        if queue is not None:
            self.trainer.publish(project.pk, events.queue_event(version.number))
        self.trainer._publish_status(project.pk)
        mlbridge.prune_artifacts(project, settings.TRAINER_KEEP_VERSIONS)
        log.info("Project %s: fast path v%s with %s labels in %.2f s", project.pk, version.number,
                 version.labels_used, durations["total_s"])

    # --- slow path -----------------------------------------------------------------------------

    def _slow_due(self, labels, now):
        every = settings.TRAINER_SLOW_EVERY
        n = int((labels >= 0).sum())
        return (
            every > 0
            and n - self.model.labels_at_slow >= every
            and now - self.last_change >= settings.TRAINER_SLOW_IDLE_S
        )

    def start_slow(self, project, labels, soft):
        """Fine-tune a copy of the model in a thread; the fast path goes on meanwhile."""
        learner = self.model.learner
        clone = copy.copy(learner)
        clone.encoder, clone.head, clone.proj = (copy.deepcopy(learner.encoder), copy.deepcopy(learner.head),
                                                copy.deepcopy(learner.proj))
        clone._spectral = {}
        self.slow = Future()
        self.slow_cancel = threading.Event()
        self.slow_labels = labels.copy()
        self.slow_pool = self.model.pool_index.copy()
        budget = settings.TRAINER_SLOW_BUDGET_S
        cancel, future, pk, trainer = self.slow_cancel, self.slow, self.project_id, self.trainer

        def progress(fraction, info):
            if cancel.is_set() or trainer.stop.is_set():
                raise Interrupted("fine-tuning cancelled")

        def work():
            t = time.perf_counter()
            try:
                clone.finetune(labels, soft, progress=progress, time_budget_s=budget)
                future.set_result((clone, time.perf_counter() - t))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                future.set_exception(exc)

        self.model.labels_at_slow = int((labels >= 0).sum())
        self.set_state(phase=TrainerState.Phase.TRAINING, progress=None,
                       detail=f"Fine-tuning on {self.model.labels_at_slow} labels in the background.")
        self.slow_thread = threading.Thread(target=work, name=f"finetune-{pk}", daemon=True)
        self.slow_thread.start()

    def _adopt_slow(self, project):
        """A finished fine-tuning: keep its encoder if validation accepted it (checkpoint +
        model version), then the fast path runs on the newest labels."""
        from . import mlbridge

        if self.slow is None or not self.slow.done():
            return False
        future, self.slow, self.slow_thread = self.slow, None, None
        try:
            clone, seconds = future.result()
        except Interrupted:
            return False
        except Exception:  # noqa: BLE001
            mlbridge.record_failure(project, self.trainer.name, ModelVersion.Kind.SLOW, traceback.format_exc(),
                                    max_failures=settings.TRAINER_MAX_FAILURES, backoff_s=5)
            self.trainer._publish_status(project.pk)
            return True
        metrics = {"accepted": bool(clone.accepted)}
        labels = self.slow_labels
        if clone.accepted and np.array_equal(self.slow_pool, self.model.pool_index):
            learner = self.model.learner
            learner.encoder, learner.head, learner.proj = clone.encoder, clone.head, clone.proj
            learner.emb, learner.graph = clone.emb, clone.graph
            learner.version = max(learner.version, clone.version) + 1
            learner.last = None
            checkpoint = mlbridge.checkpoint_files(project, self.model, "slow", labels)
            self.model.base_checkpoint = checkpoint
            folder = checkpoint.rsplit("/", 1)[0]
        else:
            checkpoint, folder = "", ""
        metrics["adopted"] = bool(checkpoint)  # accepted, and the pool did not change meanwhile
        mlbridge.commit_version(
            project, self.trainer.name, kind=ModelVersion.Kind.SLOW, model=self.model, labels=labels,
            durations={"finetune_s": round(seconds, 2)}, metrics=metrics, artifact_dir=folder,
            checkpoint=checkpoint, make_current=False, phase=TrainerState.Phase.TRAINING, generation=self.generation,
            detail="Fine-tuned; updating guesses." if checkpoint else "Kept the previous model: fine-tuning did not "
            "improve it, or images were imported meanwhile.",
        )
        self.labels = None  # the next step runs the fast path with the newest labels
        self.last_fast = 0.0
        return True
