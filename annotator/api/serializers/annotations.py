"""Answers as owners see them: the filters of the list, an answer with its history, and a
correction."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator.access import MAX_ID
from annotator.labeling.serializers import SuggestionSerializer, answer_labels
from annotator.models import Annotation
from annotator.projects.classes import MAX_CLASSES


class AnnotationQuerySerializer(serializers.Serializer):
    annotator = serializers.CharField(max_length=150, required=False, help_text="A username.")
    label = serializers.CharField(max_length=100, required=False, help_text="A class name.")
    source = serializers.ChoiceField(choices=Annotation.Source.choices, required=False)
    item = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    include_undone = serializers.BooleanField(
        required=False, default=False, help_text="Also list answers that were deleted or undone."
    )


class AnnotationChangeSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["correct", "delete"])
    old_label = serializers.CharField(
        allow_blank=True, help_text="Empty for a skip; a multi-label answer's set as \"{cat, dog}\" (\"{}\": none).")
    new_label = serializers.CharField(allow_blank=True, help_text="Empty for a delete; a set as in old_label.")
    changed_by = serializers.CharField(source="changed_by.username", allow_null=True, default=None)
    at = serializers.DateTimeField()


class AnnotationRecordSerializer(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", read_only=True)
    file_name = serializers.CharField(source="item.original_name", read_only=True)
    label = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    labels = serializers.SerializerMethodField(
        help_text="Multi-label answers: the classes that apply ([]: none); null otherwise."
    )
    annotator = serializers.CharField(source="annotator.username", read_only=True)
    suggestion = serializers.SerializerMethodField(help_text="The model's guess shown with the item, if any.")

    class Meta:
        model = Annotation
        fields = [
            "id", "item", "file_name", "label", "labels", "skipped", "unsure", "annotator", "source", "batch",
            "is_audit", "undone", "duration_ms", "suggestion", "created_at",
        ]
        read_only_fields = fields

    def get_labels(self, annotation) -> list[str] | None:
        return answer_labels(annotation)

    @extend_schema_field(SuggestionSerializer(allow_null=True))
    def get_suggestion(self, annotation):
        return annotation.suggestion


class AnnotationDetailSerializer(AnnotationRecordSerializer):
    changes = AnnotationChangeSerializer(many=True, read_only=True, help_text="Corrections and deletion, oldest first.")

    class Meta(AnnotationRecordSerializer.Meta):
        fields = [*AnnotationRecordSerializer.Meta.fields, "changes"]
        read_only_fields = fields


class AnnotationCorrectionSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100, required=False, help_text="The right class name.")
    labels = serializers.ListField(
        # at most one entry per class: a longer form body would pass Django's field limit (1000)
        child=serializers.CharField(max_length=100), required=False, allow_empty=True, max_length=MAX_CLASSES,
        help_text="Multi-label projects: the right classes ([]: none applies).",
    )

    def validate(self, attrs):
        if ("label" in attrs) == ("labels" in attrs):
            raise serializers.ValidationError({"label": [
                "Send the right class in 'label' (or, in a multi-label project, the right classes in 'labels')."]})
        return attrs
