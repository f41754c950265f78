"""The Job table: one row per background job (a large import, an export file, a backup), its
progress and outcome. The work itself runs in the task worker (annotator/jobs/); a django-tasks
row carries each attempt, this row is what people see and what survives every restart.

Kept out of models.py (which was at its line budget) and imported at its end, so that it is
still one app's models; it names Project by string, so it imports nothing of models.py."""
from django.conf import settings
from django.db import models


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    # No project: a site-wide job (a backup).
    project = models.ForeignKey("annotator.Project", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="jobs")
    kind = models.CharField(max_length=32)  # a name in annotator.jobs.registry.REGISTRY
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    params = models.JSONField(default=dict, blank=True)  # the kind's input: options, uploaded files in storage
    result = models.JSONField(null=True, blank=True)  # the kind's output: a report, the file written
    progress = models.FloatField(default=0.0)  # 0 to 1
    message = models.CharField(max_length=300, blank=True)  # what it is doing, or why it failed
    attempts = models.PositiveIntegerField(default=0)  # runs started; each run is fenced by its number
    max_attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)  # of the current (or last) attempt
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat")]

    def __str__(self):
        return f"{self.kind} job {self.pk} ({self.status})"

    @property
    def is_active(self):
        return self.status in self.ACTIVE

    def stored_files(self):
        """Names in the default storage that belong to this job: its uploads and its output."""
        names = list(self.params.get("uploads", {}).keys()) if isinstance(self.params, dict) else []
        if isinstance(self.result, dict) and self.result.get("file"):
            names.append(self.result["file"])
        return names
