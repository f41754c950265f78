"""Items of the pool: the filters of the list, an item with its labels and the model's guess,
and the review of a suspect label."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator.labeling.serializers import SuggestionSerializer, answer_labels
from annotator.models import Annotation
from annotator.projects.selectors import ITEM_STATES


class ItemQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=ITEM_STATES,
        required=False,
        help_text=(
            "open: still served to annotators; labeled: has at least one label; skipped: only skipped "
            "so far; done: has all the answers it needs."
        ),
    )
    predicted = serializers.CharField(
        max_length=100, required=False, help_text="A class name: items the current model predicts as this class."
    )
    min_confidence = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, help_text="Lowest confidence of the model's top guess (0-1)."
    )
    max_confidence = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, help_text="Highest confidence of the model's top guess (0-1)."
    )

    def validate(self, attrs):
        low, high = attrs.get("min_confidence"), attrs.get("max_confidence")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError("min_confidence must not be larger than max_confidence.")
        return attrs


class ItemLabelSerializer(serializers.Serializer):
    annotation = serializers.IntegerField(source="id")
    label = serializers.CharField(source="label.name", allow_null=True, help_text="null in a multi-label project.")
    labels = serializers.SerializerMethodField(help_text="Multi-label projects: the answer's set ([]: none applies).")
    annotator = serializers.CharField(source="annotator.username")
    source = serializers.ChoiceField(choices=Annotation.Source.choices)

    def get_labels(self, annotation) -> list[str] | None:
        return answer_labels(annotation)


class ExternalSuggestionSerializer(serializers.Serializer):
    label = serializers.CharField()
    score = serializers.FloatField()
    source = serializers.CharField(help_text="The name the guesses were imported under.")


class ItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    file_name = serializers.CharField(source="original_name", help_text="The name the image was imported with.")
    image_url = serializers.SerializerMethodField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    label_count = serializers.IntegerField()
    done = serializers.BooleanField()
    labels = ItemLabelSerializer(source="live_labels", many=True, help_text="Live labels (skips left out).")
    prediction = serializers.SerializerMethodField(
        help_text="The current model's guess, or null before a model has scored this item."
    )
    external_suggestion = ExternalSuggestionSerializer(
        allow_null=True, read_only=True,
        help_text="A guess imported from another tool (POST .../suggestions/import/), or null; the labeling "
        "page shows it while `prediction` is null.",
    )

    def get_image_url(self, item) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(item.image_url()) if request else item.image_url()

    @extend_schema_field(SuggestionSerializer(allow_null=True))
    def get_prediction(self, item):
        current = self.context.get("predictions")
        return current.suggestion(item) if current else None


class ReviewSerializer(serializers.Serializer):
    label = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=100,
        help_text="Relabel every live label of the item to this class; leave out (or empty) to keep the labels.",
    )


class ReviewResultSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    changed = serializers.IntegerField(help_text="Labels that got the new class.")
    label = serializers.CharField(allow_null=True)
