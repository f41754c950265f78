"""What an owner does to the model loop: pause and resume training, reset the model, start
it from an uploaded checkpoint, and review the labels the model doubts (keep or relabel).

The trainer reads the project's `training_paused` and `model_generation` at every step and
before it commits anything (modelloop.results.commit_version), so these writes take effect
within a poll, and a result computed for a model that was reset meanwhile is dropped.
Shared by the settings and dashboard pages and the REST API.
"""
import logging
import os
import tempfile
import uuid
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import transaction

from annotator import events
from annotator.access import Invalid
from annotator.db import lock_project_row
from annotator.modelloop import shared
from annotator.modelloop.predictions import artifact_path
from annotator.modelloop.status import trainer_status
from annotator.models import Encoder, Project, QueueEntry, TrainerState

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def _publish(project):
    """Tell open pages at once; a publishing failure must not undo the owner's change."""
    try:
        events.publish(project.pk, events.status_event(trainer_status(project)))
    except Exception:  # noqa: BLE001 - no channel layer (a management command), Redis down
        log.warning("Could not publish the status of project %s", project.pk, exc_info=True)


def set_paused(project, paused):
    """Pause (the trainer runs nothing for the project; labeling goes on in the last queue's
    order) or resume. Idempotent."""
    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(training_paused=bool(paused))
        state, _created = TrainerState.objects.get_or_create(project=project)
        if paused:
            state.phase, state.progress = TrainerState.Phase.PAUSED, None
            state.detail = "Training is paused; labeling goes on with the last model's queue."
        elif state.phase == TrainerState.Phase.PAUSED:
            state.phase, state.detail = TrainerState.Phase.WAITING, "Resuming."
        state.save()
    project.training_paused = bool(paused)
    _publish(project)
    return project


def set_encoder(project, encoder, *, by):
    """Choose what embeds the project's images (`models.Encoder`). A different encoder means
    different embeddings, so the model resets (a new generation); the same one changes
    nothing. An encoder whose package (timm, open_clip) is not installed is refused."""
    from mlcore.encoders import catalog

    if encoder not in Encoder.values:
        raise Invalid(f"Unknown encoder {encoder!r}; choose one of {', '.join(Encoder.values)}.")
    missing = catalog.missing_package(encoder) if encoder in catalog.PRETRAINED else None
    if missing is not None and encoder != project.encoder:
        raise Invalid(f"{missing} Choose another encoder, or ask the server's administrator to install it.")
    with transaction.atomic():
        lock_project_row(project)
        changed = Project.objects.filter(pk=project.pk).exclude(encoder=encoder).update(encoder=encoder)
    project.encoder = encoder
    if changed:
        reset_model(project, by=by)
    return project


def reset_model(project, *, by, clear_checkpoint=False):
    """Start the model over: a new generation (trainers drop the models they hold and
    pretrain again, or load the uploaded checkpoint), no queue, no current version, so no
    guesses until the new model's first fast path. Labels are untouched; old versions stay
    listed (with their generation) but no longer serve, export or resume."""
    with transaction.atomic():
        lock_project_row(project)
        fresh = Project.objects.get(pk=project.pk)
        fresh.model_generation += 1
        fields = ["model_generation"]
        if clear_checkpoint and fresh.init_checkpoint:
            old = fresh.init_checkpoint
            transaction.on_commit(lambda: _remove_file(old))  # the file goes only once the row forgets it
            fresh.init_checkpoint, fresh.init_checkpoint_name = "", ""
            fields += ["init_checkpoint", "init_checkpoint_name"]
        fresh.save(update_fields=fields)
        QueueEntry.objects.filter(project=project).delete()
        state, _created = TrainerState.objects.get_or_create(project=project)
        state.current_version = None
        state.failures, state.retry_at, state.last_error = 0, None, ""
        state.progress = None
        if not fresh.training_paused:
            state.phase = TrainerState.Phase.WAITING
        if fresh.init_checkpoint:
            start = f"from {fresh.init_checkpoint_name}"
        elif fresh.encoder == Encoder.SELF_SUPERVISED:
            start = "with contrastive pretraining"
        else:
            start = f"with the {fresh.get_encoder_display()} encoder" if fresh.encoder != Encoder.AUTO else (
                "with the best encoder available")
        state.detail = f"Model reset by {by.get_username()}; starting over {start}."
        state.save()
    for field in ("model_generation", "init_checkpoint", "init_checkpoint_name", "encoder"):
        setattr(project, field, getattr(fresh, field))
    log.info("Project %s: model reset by %s (generation %s)", project.pk, by.get_username(), fresh.model_generation)
    _publish(project)
    try:
        events.publish(project.pk, events.queue_event(None))
    except Exception:  # noqa: BLE001
        log.warning("Could not publish the queue reset of project %s", project.pk, exc_info=True)
    return project


def _remove_file(relative):
    try:
        (artifact_path(relative)).unlink()
    except OSError:
        pass
    where = PurePosixPath(relative)
    shared.unpublish(str(where.parent), [where.name])


def upload_checkpoint(project, upload, *, by):
    """Store an uploaded checkpoint, check it against the project's encoder (weights_only
    load: no pickled code runs), and reset the model to start from it. Invalid with the
    reason when the file is too big, not a checkpoint, or has nothing that fits; the
    project is unchanged then. Returns the check's report (matched/total tensors)."""
    name = Path(upload.name or "checkpoint.pt").name
    limit = settings.CHECKPOINT_UPLOAD_MAX_MB * 1024 * 1024
    if upload.size is not None and upload.size > limit:
        raise Invalid(f"{name} is over {settings.CHECKPOINT_UPLOAD_MAX_MB} MB ({upload.size:,} bytes); "
                               f"checkpoints up to {settings.CHECKPOINT_UPLOAD_MAX_MB} MB are accepted "
                               "(CHECKPOINT_UPLOAD_MAX_MB).")
    if upload.size == 0:
        raise Invalid(f"{name} is empty.")
    if not name.lower().endswith(CHECKPOINT_SUFFIXES):
        raise Invalid(f"{name} does not look like a PyTorch checkpoint: expected a file ending in "
                               f"{', '.join(CHECKPOINT_SUFFIXES)}.")
    relative = f"projects/{project.pk}/{shared.UPLOADS}/{uuid.uuid4().hex}.pt"
    target = artifact_path(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in upload.chunks():
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        from annotator.modelloop import bridge  # torch: only for this rare owner action, never on the labeling path

        try:
            report = bridge.check_init_checkpoint(project, tmp)
        except ValueError as exc:
            raise Invalid(f"{name}: {exc}") from None
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:
        shared.publish(str(PurePosixPath(relative).parent), [target.name])  # for a trainer on another machine
        with transaction.atomic():
            lock_project_row(project)
            old = Project.objects.filter(pk=project.pk).values_list("init_checkpoint", flat=True).first()
            Project.objects.filter(pk=project.pk).update(init_checkpoint=relative, init_checkpoint_name=name[:255])
            project.init_checkpoint, project.init_checkpoint_name = relative, name[:255]
            reset_model(project, by=by)
    except BaseException:
        _remove_file(relative)  # no row points at it
        raise
    if old and old != relative:
        _remove_file(old)
    return {"name": name, "matched": report["matched"], "total": report["total"],
            "architecture": report["architecture"], "classes": report["classes"]}


