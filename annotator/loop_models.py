"""The model loop's tables: a model version (ModelVersion), the ranked queue it wrote
(QueueEntry) and a project's place in the loop with its trainer lease (TrainerState). They live
beside models.py, which imports them at its end so Django finds them (models.py is at the size
limit of a module); they name its tables as strings, so this module imports nothing of the app."""
from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    """One result of the model loop: a pretraining, a fast path (propagation + ranking) or a
    slow path (fine-tuning). Its files live under ARTIFACTS_ROOT/<artifact_dir>; they are
    written (atomically) before this row, so a row never points at a half-written file."""

    class Kind(models.TextChoices):
        PRETRAIN = "pretrain", "Pretraining"
        FAST = "fast", "Fast update"
        SLOW = "slow", "Fine-tuning"

    class Status(models.TextChoices):
        OK = "ok", "Succeeded"
        FAILED = "failed", "Failed"

    project = models.ForeignKey("Project", on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField(null=True, blank=True)  # only successful runs are numbered
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OK)
    labels_used = models.PositiveIntegerField(default=0)
    pool_size = models.PositiveIntegerField(default=0)
    generation = models.PositiveIntegerField(default=0)  # the project's model_generation it belongs to
    classes = models.JSONField(default=list)  # class names in the order of the probability columns
    strategy = models.CharField(max_length=32, blank=True)
    device = models.CharField(max_length=64, blank=True)
    durations = models.JSONField(default=dict)  # seconds per step
    metrics = models.JSONField(default=dict)
    artifact_dir = models.CharField(max_length=200, blank=True)  # probabilities (+ checkpoint)
    checkpoint = models.CharField(max_length=200, blank=True)  # relative to ARTIFACTS_ROOT; the encoder state
    error = models.TextField(blank=True)
    trainer = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "number"], condition=Q(number__isnull=False), name="unique_version_number"
            ),
        ]
        indexes = [models.Index(fields=["project", "status", "number"], name="version_lookup_idx")]

    def __str__(self):
        return f"{self.project} v{self.number} ({self.kind})"


class QueueEntry(models.Model):
    """The ranked queue written by the latest fast path: swapped whole in one transaction.
    Items beyond it are served in `Item.priority` order."""

    project = models.ForeignKey("Project", on_delete=models.CASCADE, related_name="queue")
    item = models.OneToOneField("Item", on_delete=models.CASCADE, related_name="queue_entry")
    rank = models.PositiveIntegerField()
    version = models.ForeignKey("ModelVersion", on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["project", "rank"]
        indexes = [models.Index(fields=["project", "rank"], name="queue_rank_idx")]


class TrainerState(models.Model):
    """The project's place in the model loop, and the trainer lease: a trainer process owns
    the project while `lease_expires_at` is in the future and renews it with a heartbeat."""

    class Phase(models.TextChoices):
        WAITING = "waiting", "Waiting for a trainer"
        PRETRAINING = "pretraining", "Pretraining"
        TRAINING = "training", "Training"
        UP_TO_DATE = "up-to-date", "Up to date"
        PAUSED = "paused", "Paused"
        FAILED = "failed", "Failed"

    project = models.OneToOneField("Project", on_delete=models.CASCADE, related_name="trainer_state")
    owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.WAITING)
    progress = models.FloatField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    device = models.CharField(max_length=64, blank=True)
    current_version = models.ForeignKey("ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    failures = models.PositiveIntegerField(default=0)  # consecutive failed runs
    retry_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["lease_expires_at"], name="trainer_lease_idx")]
