"""One project's model inside a trainer (`modelloop.trainer`): when to run the cold start,
the fast path and the background fine-tuning, and what to do with their results. The
learner is driven through its public methods only (`clone`, `adopt`, `has_encoder`, ...);
`modelloop.bridge` and `modelloop.results` do the rest."""
import logging
import threading
import time
from concurrent.futures import Future

import numpy as np
from django.conf import settings
from django.utils import timezone

from annotator import events
from annotator.modelloop import arrays, baseline, bridge, results
from annotator.modelloop.errors import Interrupted, Superseded
from annotator.models import Item, ModelVersion, Project, TrainerState

log = logging.getLogger(__name__)


class ProjectLoop:
    """One project's model and the decisions of when to run which path."""

    def __init__(self, trainer, project_id):
        self.trainer = trainer
        self.project_id = project_id
        self.model = None  # bridge.ProjectModel
        self.labels = None  # labels of the last fast path
        self.targets = None  # and a multi-label project's targets (modelloop.arrays.set_arrays)
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
        """A step raised `error`: the traceback goes to the log, its last line on the project."""
        log.error("Trainer %s: project %s failed", self.trainer.name, self.project_id, exc_info=error)
        project = Project.objects.filter(pk=self.project_id).first()
        if project is None:
            return
        ready = self.model is not None and self.model.learner is not None and self.model.learner.has_features
        kind = ModelVersion.Kind.FAST if ready else ModelVersion.Kind.PRETRAIN
        results.record_failure(project, self.trainer.name, kind, error,
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

        return Item.objects.filter(project=project).count(), arrays.answers_signature(project)

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
            if Item.objects.filter(project=project).count() < bridge.MIN_POOL:
                self.set_state(phase=TrainerState.Phase.WAITING,
                               detail=f"Waiting for at least {bridge.MIN_POOL} images.")
                return False
            self.start(project)
            return True
        if self._adopt_slow(project):
            return True
        pool_changed = bridge.refresh_pool(project, self.model)
        labels, soft = self._labels(project, pool_changed)
        now = time.monotonic()
        changed = pool_changed or self.labels is None or not np.array_equal(labels, self.labels) or (
            project.multi_label and not np.array_equal(soft, self.targets))  # a set changed, not the count
        if changed and self.labels is not None and not pool_changed:
            self.last_change = now
        if changed and now - self.last_fast >= settings.TRAINER_FAST_MIN_INTERVAL_S:
            self.fast(project, labels, soft, rerank=pool_changed or results.queue_is_spent(project, project.strategy))
            return True
        if (not changed and now - self.last_fast >= 10 * settings.TRAINER_FAST_MIN_INTERVAL_S + 1
                and (labels < 0).any() and results.queue_is_spent(project, project.strategy)):
            self.fast(project, labels, soft, rerank=True)  # the batch ran out without new labels (skips)
            return True
        if not changed and self.slow is None and not project.multi_label and self._slow_due(labels, now):
            self.start_slow(project, labels, soft)
            return True
        return False

    def _labels(self, project, pool_changed):
        """The answers as arrays, read again only when their signature moved (and once a
        minute regardless); a poll of an idle project is one aggregate query."""

        signature = arrays.answers_signature(project)
        fresh = time.monotonic() - self.labels_read_at < 60
        if not pool_changed and self.read is not None and signature == self.answers and fresh:
            return self.read
        self.answers, self.labels_read_at = signature, time.monotonic()
        self.read = arrays.label_arrays(project, self.model.pool_index, self.model.class_ids)
        return self.read

    def start(self, project):
        """Resume from the newest checkpoint, else pretrain from scratch."""

        latest = (
            ModelVersion.objects.filter(project=project, status=ModelVersion.Status.OK,
                                        generation=project.model_generation)
            .exclude(checkpoint="").order_by("-number").first()
        )
        if latest is not None:
            self.set_state(phase=TrainerState.Phase.TRAINING, detail=f"Loading model v{latest.number}.", progress=None)
            try:
                self.model = bridge.resume(project, latest, self.trainer.device)
                return
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                log.warning("Project %s: checkpoint %s unusable (%s); pretraining again.",
                            project.pk, latest.checkpoint, exc)
        self.pretrain(project)

    def pretrain(self, project):
        """The cold start: a backbone embeds the pool (only what its store lacks), or the
        encoder is pretrained on the pool's pixels (or loaded from the uploaded checkpoint);
        then a checkpoint and the first version."""
        self.set_state(phase=TrainerState.Phase.PRETRAINING, progress=0.0, detail="Loading images.")
        t0 = time.perf_counter()
        model = bridge.build(project, self.trainer.device)
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        if model.backbone is not None:
            self._embed(project, model)
        else:
            self._pretrain_encoder(project, model)
        pretrain_s = time.perf_counter() - t1
        self.trainer.check(self.project_id)
        baseline.attach(model)
        labels, _soft = arrays.label_arrays(project, model.pool_index, model.class_ids)
        checkpoint = bridge.checkpoint_files(project, model, "pretrain", labels)
        model.base_checkpoint = checkpoint
        results.commit_version(
            project, self.trainer.name, kind=ModelVersion.Kind.PRETRAIN, model=model, labels=labels,
            durations={"load_images_s": round(load_s, 2), "pretrain_s": round(pretrain_s, 2)},
            metrics={"pool_size": model.size, "init_checkpoint": project.init_checkpoint_name or None,
                     **model.encoder_metrics()},
            artifact_dir=str(checkpoint).rsplit("/", 1)[0], checkpoint=checkpoint, make_current=False,
            generation=self.generation, phase=TrainerState.Phase.TRAINING, detail="Pretrained; ranking the pool.",
        )
        model.labels_at_slow = int((labels >= 0).sum())
        self.model = model
        self.labels = None  # forces the first fast path (cold-start queue)

    def _throttled(self, report):
        """A progress callback that checks for shutdown every call, and for steering and
        reports `report(fraction, info)` at most once a second."""
        last = [0.0]

        def progress(fraction, info=None):
            self.trainer.check(self.project_id)
            if time.monotonic() - last[0] >= 1.0:
                last[0] = time.monotonic()
                self._check_steering()
                self.set_state(progress=round(float(fraction), 3), detail=report(fraction, info or {}))
        return progress

    def _embed(self, project, model):
        name = model.backbone.name
        self.set_state(detail=f"Embedding {model.size} images with {name}.")
        progress = self._throttled(lambda fraction, info: f"Embedding images with {name}: {fraction:.0%}.")
        bridge.embed_pool(project, model, self.generation, self.trainer.device, progress)
        self.set_state(device=str(model.learner.device), detail=f"Embedded with {name}.")

    def _pretrain_encoder(self, project, model):
        device = str(model.learner.device)
        self.set_state(device=device, detail=f"Contrastive pretraining on {model.size} images ({device}).")
        progress = self._throttled(lambda fraction, info: (
            f"Contrastive pretraining: step {info.get('step')}, loss {info.get('loss', 0):.3f}."))
        if project.init_checkpoint:
            self.set_state(detail=f"Loading the uploaded encoder {project.init_checkpoint_name or ''} "
                                  f"and embedding {model.size} images ({device}).")
            bridge.load_init_checkpoint(project, model)
        else:
            model.learner.pretrain(progress=progress, time_budget_s=settings.TRAINER_PRETRAIN_BUDGET_S)

    def fast(self, project, labels, soft, rerank=True):

        t0 = time.perf_counter()
        batch = max(1, project.query_batch_size)
        held = results.held_rows(project, self.model) if rerank else ()
        if not project.multi_label:  # zero-shot guesses are a softmax over the class names
            bridge.refresh_zero_shot(self.model, self.trainer.device)
        unscored = arrays.bulk_only_rows(project, self.model.pool_index)  # they train, but score nothing
        audits = arrays.audit_rows(project, self.model.pool_index)  # uniform random: the honest judges
        probs, queue, durations, metrics, heldout = results.fast_path(
            project, self.model, labels, soft, project.strategy, batch, rerank=rerank, held=held, unscored=unscored,
            audits=audits)
        metrics.update(self.model.encoder_metrics())
        self.trainer.check(self.project_id)
        truth = (soft >= 0.5).astype(np.int64) if project.multi_label else labels  # held-out rows' answers
        folder = results.write_probabilities(project, self.model, probs, truth, heldout)
        durations["total_s"] = round(time.perf_counter() - t0, 4)
        version = results.commit_version(
            project, self.trainer.name, kind=ModelVersion.Kind.FAST, model=self.model, labels=labels,
            durations=durations, metrics=metrics, artifact_dir=folder, checkpoint="", queue=queue,
            strategy=project.strategy, generation=self.generation,
            phase=TrainerState.Phase.TRAINING if self.slow is not None else TrainerState.Phase.UP_TO_DATE,
            detail="Fine-tuning in the background." if self.slow is not None else "",
        )
        self.labels, self.targets = labels, soft if project.multi_label else None
        self.last_fast = time.monotonic()
        if queue is not None:
            self.trainer.publish(project.pk, events.queue_event(version.number))
        self.trainer._publish_status(project.pk)
        results.prune_artifacts(project, settings.TRAINER_KEEP_VERSIONS)
        log.info("Project %s: fast path v%s with %s labels in %.2f s", project.pk, version.number,
                 version.labels_used, durations["total_s"])

    # --- slow path -----------------------------------------------------------------------------

    def _slow_due(self, labels, now):
        every = settings.TRAINER_SLOW_EVERY
        n = int((labels >= 0).sum())
        return (
            every > 0
            and self.model.learner.can_finetune
            and n - self.model.labels_at_slow >= every
            and now - self.last_change >= settings.TRAINER_SLOW_IDLE_S
        )

    def start_slow(self, project, labels, soft):
        """Fine-tune a copy of the model in a thread; the fast path goes on meanwhile."""
        clone = self.model.learner.clone()  # own encoder, head and projection; the rest shared
        self.slow = Future()
        self.slow_cancel = threading.Event()
        self.slow_labels = labels.copy()
        self.slow_pool = self.model.pool_index.copy()
        audits = arrays.audit_rows(project, self.slow_pool)  # judged on these, never trained on
        budget = settings.TRAINER_SLOW_BUDGET_S
        cancel, future, pk, trainer = self.slow_cancel, self.slow, self.project_id, self.trainer

        def progress(fraction, info):
            if cancel.is_set() or trainer.stop.is_set():
                raise Interrupted("fine-tuning cancelled")

        def work():
            t = time.perf_counter()
            try:
                clone.finetune(labels, soft, progress=progress, time_budget_s=budget, heldout=audits)
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

        if self.slow is None or not self.slow.done():
            return False
        future, self.slow, self.slow_thread = self.slow, None, None
        try:
            clone, seconds = future.result()
        except Interrupted:
            return False
        except Exception as exc:  # noqa: BLE001
            log.error("Trainer %s: project %s: the fine-tuning failed", self.trainer.name, project.pk, exc_info=exc)
            results.record_failure(project, self.trainer.name, ModelVersion.Kind.SLOW, exc,
                                    max_failures=settings.TRAINER_MAX_FAILURES, backoff_s=5)
            self.trainer._publish_status(project.pk)
            return True
        metrics = {"accepted": bool(clone.accepted), "selection": clone.selection}
        labels = self.slow_labels
        if clone.accepted and np.array_equal(self.slow_pool, self.model.pool_index):
            self.model.learner.adopt(clone)  # the pool is the one the clone was fine-tuned on
            self.model.embedded += self.model.size  # the fine-tuned encoder embedded every image
            checkpoint = bridge.checkpoint_files(project, self.model, "slow", labels)
            self.model.base_checkpoint = checkpoint
            folder = checkpoint.rsplit("/", 1)[0]
        else:
            checkpoint, folder = "", ""
        metrics["adopted"] = bool(checkpoint)  # accepted, and the pool did not change meanwhile
        metrics.update(self.model.encoder_metrics())
        results.commit_version(
            project, self.trainer.name, kind=ModelVersion.Kind.SLOW, model=self.model, labels=labels,
            durations={"finetune_s": round(seconds, 2)}, metrics=metrics, artifact_dir=folder,
            checkpoint=checkpoint, make_current=False, phase=TrainerState.Phase.TRAINING, generation=self.generation,
            detail="Fine-tuned; updating guesses." if checkpoint else "Kept the previous model: fine-tuning did not "
            "improve it, or images were imported meanwhile.",
        )
        self.labels = None  # the next step runs the fast path with the newest labels
        self.last_fast = 0.0
        return True
