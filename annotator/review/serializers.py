"""The review contract shared by the API and the review page: the item to review (with its
answers, the model's guess and why it is in the queue) and a verdict."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator.access import MAX_ID
from annotator.labeling.serializers import SuggestionSerializer, answer_labels, image_url
from annotator.modelloop import predictions
from annotator.models import Annotation, Review
from annotator.review.queue import REASONS

REASON_TEXT = {
    "disagreement": "Annotators gave different labels.",
    "unsure": "An annotator was unsure.",
    "suspect": "The model, with this label held out, confidently disagrees with it.",
    "sample": "Drawn at random from an annotator's answers (the project's review fraction).",
}


class ReviewAnswerSerializer(serializers.ModelSerializer):
    annotation = serializers.IntegerField(source="pk")
    annotator = serializers.CharField(source="annotator.username")
    label = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    labels = serializers.SerializerMethodField(help_text="Multi-label answers: the classes given; null otherwise.")

    class Meta:
        model = Annotation
        fields = ["annotation", "annotator", "label", "labels", "skipped", "unsure", "source", "created_at"]
        read_only_fields = fields

    def get_labels(self, annotation) -> list[str] | None:
        return answer_labels(annotation)


class ReviewItemSerializer(serializers.Serializer):
    """An item to review (annotator.review.queue.Candidate)."""

    item = serializers.IntegerField(source="item.pk", help_text="The item id to send the verdict with.")
    name = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    width = serializers.IntegerField(source="item.width")
    height = serializers.IntegerField(source="item.height")
    reasons = serializers.ListField(child=serializers.ChoiceField(choices=REASONS),
                                    help_text="Why the item is in the review queue.")
    answers = ReviewAnswerSerializer(many=True, help_text="The live answers, oldest first.")
    guess = serializers.SerializerMethodField(help_text="The current model's guess for the image, or null.")
    suspect_guess = serializers.CharField(
        allow_null=True, help_text="For a suspect: the class the model believes with the label held out.")
    lease_expires = serializers.DateTimeField(source="lease.expires_at",
                                              help_text="The item is the caller's alone until then.")

    def get_name(self, candidate) -> str:
        return candidate.item.original_name or f"image #{candidate.item.pk}"

    def get_image_url(self, candidate) -> str:
        return image_url(candidate.item, self.context)

    @extend_schema_field(SuggestionSerializer(allow_null=True))
    def get_guess(self, candidate):
        current = predictions.current(candidate.item.project)
        return current.suggestion(candidate.item) if current else None


class QueueCountsSerializer(serializers.Serializer):
    disagreement = serializers.IntegerField()
    unsure = serializers.IntegerField()
    suspect = serializers.IntegerField()
    sample = serializers.IntegerField()
    total = serializers.IntegerField(help_text="Items in the queue (an item may have several reasons).")


class VerdictSerializer(serializers.Serializer):
    item = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The id from review/next/.")
    verdict = serializers.ChoiceField(choices=Review.Verdict.choices,
                                      help_text="accept: the answers stand; fix: the item's labels become yours.")
    label = serializers.CharField(required=False, max_length=100,
                                  help_text="A fix on a single-label project: the right class.")
    labels = serializers.ListField(child=serializers.CharField(max_length=100), required=False, allow_empty=True,
                                   max_length=1000, help_text="A fix on a multi-label project: the classes that "
                                                              "apply ([]: none).")


class ReviewSerializer(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", read_only=True)
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)
    labels = serializers.ListField(child=serializers.CharField(), help_text="The item's classes after the verdict.")
    reasons = serializers.ListField(child=serializers.ChoiceField(choices=REASONS))
    answers = serializers.ListField(child=serializers.DictField(), help_text=(
        "The answers judged, as they were: annotation, annotator (id), username, labels (null for a skip or "
        "unsure), unsure."))

    class Meta:
        model = Review
        fields = ["id", "item", "reviewer", "verdict", "labels", "reasons", "answers", "created_at"]
        read_only_fields = fields
