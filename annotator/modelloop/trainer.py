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
import logging
import os
import socket
import threading
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import F, Max, OuterRef, Q, Subquery
from django.utils import timezone

from annotator import events
from annotator.modelloop.errors import Interrupted, Superseded
from annotator.modelloop.project_loop import ProjectLoop
from annotator.modelloop.status import trainer_status
from annotator.models import Lease, Project, TrainerState

log = logging.getLogger(__name__)


def default_name():
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def last_activity(project_ids):
    """{project id: when its newest lease was handed out, or None}: a project being labeled
    now has leases (the leases table is small, so this is cheap on every claim)."""
    rows = Project.objects.filter(pk__in=project_ids).annotate(active=Max("leases__created_at"))
    return dict(rows.values_list("pk", "active"))


def _row_lock(qs):
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True)
    return qs.select_for_update()


class Trainer:
    def __init__(self, name=None, *, slugs=None, max_projects=None, device=None, publish=None):
        self.name = name or default_name()
        self.slugs = set(slugs or [])
        # TRAINER_MAX_PROJECTS unless given (0: no limit)
        self.max_projects = max_projects if max_projects is not None else (settings.TRAINER_MAX_PROJECTS or None)
        self.device = device
        self.publish = publish or events.publish
        self.stop = threading.Event()
        self.held = {}  # project id -> ProjectLoop
        self.lost = set()  # project ids whose lease the heartbeat could not renew
        self._lock = threading.Lock()

    # --- leases ------------------------------------------------------------------------

    def claim(self):
        """Take free or expired projects (up to max_projects held), those being labeled most
        recently first; when full, hand back a held project to a more active waiting one
        (`_make_room`). Returns new project ids."""
        now = timezone.now()
        candidates = Project.objects.filter(items__isnull=False).distinct()
        if self.slugs:
            candidates = candidates.filter(slug__in=self.slugs)
        missing = candidates.filter(trainer_state__isnull=True).values_list("pk", flat=True)
        TrainerState.objects.bulk_create([TrainerState(project_id=pk) for pk in missing], ignore_conflicts=True)
        free = Q(owner="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(owner=self.name)
        waiting = TrainerState.objects.filter(free, project__in=candidates).exclude(project_id__in=list(self.held))
        room = None if self.max_projects is None else self.max_projects - len(self.held)
        if room is not None and room <= 0:
            if not self._make_room(waiting):
                return []
            room = 1
        claimed = []
        with transaction.atomic():
            newest_lease = Lease.objects.filter(project_id=OuterRef("project_id")).order_by("-created_at")
            qs = waiting.annotate(active=Subquery(newest_lease.values("created_at")[:1]))
            qs = _row_lock(qs.order_by(F("active").desc(nulls_last=True), "project_id"))
            for state in qs[:room] if room is not None else qs:
                state.owner = self.name
                state.lease_expires_at = now + timedelta(seconds=settings.TRAINER_LEASE_SECONDS)
                state.heartbeat_at = now
                state.save(update_fields=["owner", "lease_expires_at", "heartbeat_at", "updated_at"])
                claimed.append(state.project_id)
        for pk in claimed:
            with self._lock:
                self.lost.discard(pk)  # from an earlier hold of the same project
            self.held[pk] = ProjectLoop(self, pk)
            log.info("Trainer %s took project %s", self.name, pk)
        return claimed

    def _make_room(self, waiting):
        """With every slot taken (TRAINER_MAX_PROJECTS): hand back the held project labeled
        least recently if a waiting project is being labeled more recently, so that one user's
        many projects cannot keep the trainer from everyone else's. True if a slot is free."""
        best = waiting.annotate(active=Max("project__leases__created_at")).filter(active__isnull=False)
        best = best.order_by("-active").values_list("active", flat=True).first()
        if best is None:
            return False
        held = last_activity(list(self.held))
        stalest = min(self.held, key=lambda pk: (held.get(pk) is not None, held.get(pk) or best))
        if held.get(stalest) is not None and held[stalest] >= best:
            return False
        self.hand_back(stalest)
        return True

    def hand_back(self, pk):
        """Stop working on a held project and free its lease for another trainer (or later)."""
        loop = self.held.pop(pk)
        loop.abandon()
        loop.join_slow(timeout=5)
        TrainerState.objects.filter(project_id=pk, owner=self.name).update(
            owner="", lease_expires_at=None, phase=TrainerState.Phase.WAITING, progress=None, updated_at=timezone.now(),
            detail="Waiting for a trainer: it is busy with more recently labeled projects (TRAINER_MAX_PROJECTS).",
        )
        with self._lock:
            self.lost.discard(pk)
        log.info("Trainer %s handed back project %s (less recently labeled than a waiting one)", self.name, pk)
        self._publish_status(pk)

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
        """Give every held project back; their fine-tunings are cancelled and waited for first
        (a thread still inside torch when the interpreter exits aborts the process)."""
        for loop in self.held.values():
            loop.abandon()
        for loop in self.held.values():
            loop.join_slow(timeout=30)
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
            except Exception as exc:  # noqa: BLE001 - recorded on the project; the loop goes on
                loop.failed(exc)
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
            self.publish(pk, events.status_event(trainer_status(project)))


