"""Bulk labeling: the request (items and one answer for all), the stored batch, and the grid's
candidates."""
from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator.access import MAX_ID
from annotator.labeling.bulk import KEY_MAX
from annotator.labeling.serializers import SuggestionSerializer, answer_labels, image_url

KEY_MESSAGE = "Send an idempotency_key: a fresh random string per bulk answer, reused only for retries."


class BulkAnswerSerializer(serializers.Serializer):
    items = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        allow_empty=False,
        help_text=f"The item ids to answer (at most BULK_MAX_ITEMS, {settings.BULK_MAX_ITEMS} by default); all or "
                  "none are stored.",
        error_messages={"empty": "Give the item ids to label in 'items' (a non-empty list)."},
    )
    label = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                  help_text="The class for every item (single-label projects).")
    labels = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, allow_empty=True, max_length=1000,
        help_text="Multi-label projects: the classes that apply to every item; [] means none applies.",
    )
    idempotency_key = serializers.CharField(
        max_length=KEY_MAX, help_text="A fresh random string per bulk answer; resend it only to retry the same one.",
        error_messages={"required": KEY_MESSAGE, "blank": KEY_MESSAGE},
    )


class BulkBatchSerializer(serializers.Serializer):
    batch = serializers.CharField(help_text="The batch's id: undo it with .../annotations/bulk/<batch>/undo/.")
    annotator = serializers.SerializerMethodField()
    label = serializers.SerializerMethodField(help_text="The class given (single-label projects), else null.")
    labels = serializers.SerializerMethodField(help_text="The classes given (multi-label projects), else null.")
    count = serializers.SerializerMethodField(help_text="Answers in the batch.")
    items = serializers.ListField(child=serializers.IntegerField(), help_text="The answered item ids, ascending.")
    annotations = serializers.SerializerMethodField(help_text="The answers' ids, in the order of `items`.")
    undone = serializers.BooleanField(help_text="Whether the batch was undone.")

    def _first(self, result):
        return result.annotations[0]

    def get_annotator(self, result) -> str:
        return self._first(result).annotator.username

    def get_label(self, result) -> str | None:
        first = self._first(result)
        return first.label.name if first.label_id else None

    def get_labels(self, result) -> list[str] | None:
        return answer_labels(self._first(result))

    def get_count(self, result) -> int:
        return len(result.annotations)

    def get_annotations(self, result) -> list[int]:
        return [a.pk for a in result.annotations]


class CandidateQuerySerializer(serializers.Serializer):
    label = serializers.CharField(required=False, help_text="A class: the open images the model puts in it.")
    similar_to = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="An item id: the image and its nearest open images.")
    size = serializers.IntegerField(required=False, help_text=(
        f"How many images ({settings.BULK_GRID_MIN}-{settings.BULK_GRID_MAX}; default BULK_GRID_SIZE)."))


class CandidateSerializer(serializers.Serializer):
    item = serializers.IntegerField(source="item.pk")
    file_name = serializers.CharField(source="item.original_name")
    image_url = serializers.SerializerMethodField()
    score = serializers.FloatField(help_text="The class's probability, or the similarity to the chosen image.")
    suggestion = serializers.SerializerMethodField(help_text="The model's guess for the image.")

    def get_image_url(self, candidate) -> str:
        return image_url(candidate.item, self.context)

    @extend_schema_field(SuggestionSerializer(allow_null=True))
    def get_suggestion(self, candidate):
        return candidate.suggestion


class CandidatesSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["label", "similar"])
    label = serializers.CharField(allow_null=True)
    similar_to = serializers.SerializerMethodField()
    version = serializers.IntegerField(allow_null=True, help_text="The model version they come from.")
    detail = serializers.CharField(help_text="Why the list is empty or short; empty otherwise.")
    candidates = CandidateSerializer(many=True, help_text="Best first.")

    def get_similar_to(self, result) -> int | None:
        return result.anchor.pk if result.anchor is not None else None
