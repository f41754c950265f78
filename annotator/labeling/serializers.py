"""The labeling contract shared by the API and the labeling page: what a client asks for the
next item, what it gets (the item, its image URL and the model's guess), and what an answer is."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator.access import MAX_ID
from annotator.models import Annotation
from annotator.projects.classes import MAX_CLASSES


class LeaseQuerySerializer(serializers.Serializer):
    exclude = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        default=list,
        max_length=100,
        help_text=(
            "Item ids the caller already holds on screen; asks for another item (a prefetch). "
            "A caller holds at most two items at once."
        ),
    )
    release = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        default=list,
        max_length=100,
        help_text=(
            "Item ids whose leases the caller gives back first, e.g. a prefetched item dropped "
            "because the model published a new queue."
        ),
    )


class ScoredClassSerializer(serializers.Serializer):
    label = serializers.CharField()
    confidence = serializers.FloatField()


class SuggestionSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="The model's guess, a class name.")
    confidence = serializers.FloatField()
    source = serializers.CharField(
        required=False,
        help_text="Only on a guess imported from another tool (a predictions CSV), shown while the project's "
        "model has no guess for the item: the name the guesses were imported under. Absent on the model's guess.",
    )
    top = ScoredClassSerializer(many=True, help_text="The best-scored classes, best first.")
    labels = serializers.ListField(
        child=serializers.CharField(), required=False,
        help_text="Multi-label projects: the suggested set (each class whose probability is at least 0.5).",
    )
    set_confidence = serializers.FloatField(
        required=False, help_text="Multi-label projects: the chance the whole suggested set is right.")


def image_url(item, context) -> str:
    """The item's member-checked image URL, absolute when the serializer has the request."""
    url = item.image_url()
    request = context.get("request")
    return request.build_absolute_uri(url) if request else url


class LeasedItemSerializer(serializers.Serializer):
    """An item leased to the caller (`id` is the item id to answer with)."""

    id = serializers.IntegerField(source="item.id")
    image_url = serializers.SerializerMethodField()
    width = serializers.IntegerField(source="item.width")
    height = serializers.IntegerField(source="item.height")
    suggestion = serializers.SerializerMethodField(help_text="The model's guess, or null before a model exists.")
    audit = serializers.BooleanField(source="is_audit", help_text="Drawn at random to measure the model.")
    lease_expires = serializers.DateTimeField(source="expires_at")

    def get_image_url(self, lease) -> str:
        return image_url(lease.item, self.context)

    @extend_schema_field(SuggestionSerializer(allow_null=True))
    def get_suggestion(self, lease):
        return lease.suggestion


class AnswerSerializer(serializers.Serializer):
    item = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The id from /next/.")
    label = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="A class name; leave out when skipping."
    )
    labels = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        allow_empty=True,
        max_length=MAX_CLASSES,  # one entry per class at most; keeps a form body under Django's 1000 fields
        help_text="Multi-label projects: the class names that apply; an empty list means none applies.",
    )
    skip = serializers.BooleanField(required=False, default=False)
    unsure = serializers.BooleanField(
        required=False, default=False, help_text="Not sure: the item goes to review and stays out of training."
    )
    idempotency_key = serializers.CharField(
        max_length=100,
        help_text="A fresh random string per answer; resend the same key only to retry the same answer.",
        error_messages={
            "required": "Send an idempotency_key: a fresh random string per answer, reused only for retries.",
            "blank": "Send an idempotency_key: a fresh random string per answer, reused only for retries.",
        },
    )
    duration_ms = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=2**31 - 1,
        help_text="Time spent on the item, in milliseconds.",
    )


def answer_labels(annotation):
    """The class names of a multi-label answer in the project's class order ([] when none
    applies), or None for a single-label answer and for skips."""
    if annotation.label_id or annotation.skipped:
        return None
    return [c.name for c in sorted(annotation.labels.all(), key=lambda c: (c.order, c.pk))]


class AnnotationSerializer(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", read_only=True)
    label = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    labels = serializers.SerializerMethodField(
        help_text="Multi-label answers: the classes that apply ([]: none); null otherwise."
    )
    annotator = serializers.CharField(source="annotator.username", read_only=True)
    suggestion = serializers.SerializerMethodField(help_text="The model's guess shown with the item, if any.")

    class Meta:
        model = Annotation
        fields = ["id", "item", "label", "labels", "skipped", "unsure", "annotator", "created_at", "is_audit",
                  "suggestion"]
        read_only_fields = fields

    def get_labels(self, annotation) -> list[str] | None:
        return answer_labels(annotation)

    @extend_schema_field(SuggestionSerializer(allow_null=True))
    def get_suggestion(self, annotation):
        return annotation.suggestion


class AnswerAndNextSerializer(AnswerSerializer):
    exclude = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        default=list,
        max_length=100,
        help_text="Item ids the caller still holds on screen (a prefetched item): the next item is another one.",
    )


class AnswerAndNextResultSerializer(serializers.Serializer):
    annotation = AnnotationSerializer(help_text="The stored answer (201), or the one stored earlier (200, a retry).")
    next = LeasedItemSerializer(allow_null=True, help_text="The item to label next; null when none is available.")
