"""Background jobs: what one looks like, and the request that starts an export job."""
from django.urls import reverse
from rest_framework import serializers

from annotator.exporting.formats import DEFAULT_MIN_CONFIDENCE
from annotator.exporting.registry import DEFAULT_FORMAT, REGISTRY
from annotator.job_models import Job


class JobSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    result = serializers.JSONField(read_only=True, allow_null=True, help_text=(
        "When it succeeded: an import's counts (imported, duplicates, rejected, summary, rejected_files), "
        "an export's file (filename, content_type, size)."))
    download = serializers.SerializerMethodField(help_text="The URL of the job's file once it has one, else null.")

    class Meta:
        model = Job
        fields = ["id", "kind", "status", "progress", "message", "attempts", "max_attempts", "created_by",
                  "created_at", "started_at", "finished_at", "result", "download"]
        read_only_fields = fields
        extra_kwargs = {
            "progress": {"help_text": "From 0 to 1."},
            "message": {"help_text": "What it is doing, why it is waiting to retry, or why it failed."},
            "attempts": {"help_text": "Runs started so far; an unexpected failure is retried up to max_attempts."},
        }

    def get_download(self, job) -> str | None:
        if job.status != Job.Status.SUCCEEDED or not (job.result or {}).get("file"):
            return None
        path = reverse("api:project-job-download", kwargs={"pk": job.project_id, "job_id": job.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class ExportJobSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["export"], default="export",
                                   help_text="What to start: `export` (imports start from the images upload).")
    format = serializers.ChoiceField(choices=list(REGISTRY), default=DEFAULT_FORMAT)
    predictions = serializers.BooleanField(default=False,
                                           help_text="Also export unlabeled items by the model's guess (label formats).")
    min_confidence = serializers.FloatField(default=DEFAULT_MIN_CONFIDENCE, min_value=0.0, max_value=1.0)
