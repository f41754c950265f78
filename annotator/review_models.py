"""The review tables: a reviewer's verdict on one item (Review) and the item a reviewer holds
on screen (ReviewLease). They live beside models.py, which imports them at its end so Django
finds them (models.py is at the size limit of a module); they name its tables as strings, so
this module imports nothing of the app. The service is annotator.review."""
from django.conf import settings
from django.db import models


class Review(models.Model):
    """A reviewer's verdict on an item's answers. `accept`: the answers stand (they agree);
    `labels` copies the class names they give. `fix`: the item's labels became `labels` (every
    live label relabeled, each change in the answer's history; a `source=review` answer when
    the item had no label, an unsure-only item say). `answers` copies what was judged
    ({"annotation", "annotator", "labels": [names] or null for a skip, "unsure"}), so each
    annotator's accuracy stays measurable after a fix relabels their answers; `reasons` say why
    the item was in the queue. Class names are copied, as in AnnotationChange."""

    class Verdict(models.TextChoices):
        ACCEPT = "accept", "Accepted"
        FIX = "fix", "Fixed"

    project = models.ForeignKey("annotator.Project", on_delete=models.CASCADE, related_name="reviews")
    item = models.ForeignKey("annotator.Item", on_delete=models.CASCADE, related_name="reviews")
    # PROTECT, like Annotation.annotator: a reviewer with verdicts is deactivated, never deleted.
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    labels = models.JSONField(default=list)  # the class names the item has after the verdict
    reasons = models.JSONField(default=list)  # annotator.review.queue.REASONS that held at the time
    answers = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["project", "created_at"], name="review_by_project_idx")]

    def __str__(self):
        return f"{self.reviewer} {self.verdict} item {self.item_id}: {', '.join(self.labels) or 'none'}"


class ReviewLease(models.Model):
    """The item a reviewer is looking at, until `expires_at`: one row per item (the unique
    item), so two reviewers never get the same item at once."""

    project = models.ForeignKey("annotator.Project", on_delete=models.CASCADE, related_name="+")
    item = models.OneToOneField("annotator.Item", on_delete=models.CASCADE, related_name="review_lease")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["project", "reviewer"], name="review_lease_by_user_idx")]
