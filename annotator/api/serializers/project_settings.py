"""A project's settings and classes, and the body that changes them."""
from rest_framework import serializers

from annotator.access import MAX_ID
from annotator.models import Encoder, Strategy
from annotator.projects.changes import MULTI_LABEL_FIXED
from annotator.projects.classes import MAX_CLASSES


class SettingsClassSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Send it back in PATCH to keep (rename, move) this class.")
    name = serializers.CharField()
    hotkey = serializers.CharField(allow_blank=True)
    labels = serializers.IntegerField(help_text="Live labels of this class.")
    removable = serializers.BooleanField(help_text="False while any answer, live or deleted, refers to the class.")
    is_none = serializers.BooleanField(help_text="The \"none of these\" class (last, key N; see none_class).")


class ProjectSettingsSerializer(serializers.Serializer):
    name = serializers.CharField()
    strategy = serializers.ChoiceField(choices=Strategy.choices)
    query_batch_size = serializers.IntegerField()
    audit_fraction = serializers.FloatField()
    annotations_per_item = serializers.IntegerField()
    review_fraction = serializers.FloatField(help_text="Share of each annotator's answers sampled for review.")
    none_class = serializers.CharField(allow_null=True, help_text="The \"none of these\" class's name, or null.")
    multi_label = serializers.BooleanField(help_text="Answers are sets of classes (chosen at creation, fixed).")
    training_paused = serializers.BooleanField(help_text="The trainer runs nothing for the project while true.")
    encoder = serializers.ChoiceField(
        choices=Encoder.choices, help_text="What embeds the images (GET /api/encoders/ lists them)."
    )
    model_generation = serializers.IntegerField(help_text="How many times the model was reset.")
    init_checkpoint = serializers.CharField(
        allow_null=True, help_text="Name of the uploaded checkpoint the model starts from, or null (pretraining)."
    )
    classes = SettingsClassSerializer(many=True, help_text="In the order of the labeling buttons.")


class ClassEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_ID,
        help_text="An existing class's id; leave out for a new class.",
    )
    name = serializers.CharField(max_length=100)


class KnownFieldsOnly:
    """A PATCH body's check (a Serializer mixin): an unknown field, or none at all, is refused
    with the names of the fields (`fields_are` introduces them)."""

    fields_are = "Fields are"

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields)) if hasattr(self.initial_data, "keys") else []
        if unknown:
            raise serializers.ValidationError(
                f"Unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
                f"{self.fields_are}: {', '.join(self.fields)}."
            )
        if not attrs:
            raise serializers.ValidationError(f"Send at least one of: {', '.join(self.fields)}.")
        return attrs


class ProjectSettingsUpdateSerializer(KnownFieldsOnly, serializers.Serializer):
    """Every field is optional; only those sent change."""

    fields_are = "Settings are"

    name = serializers.CharField(max_length=200, required=False)
    strategy = serializers.ChoiceField(choices=Strategy.choices, required=False)
    query_batch_size = serializers.IntegerField(
        min_value=1, max_value=1000, required=False, help_text="Items the model picks per ranking round (1-1000)."
    )
    audit_fraction = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False,
        help_text="Share of served items drawn at random to measure the model (0-1).",
    )
    annotations_per_item = serializers.IntegerField(
        min_value=1, max_value=20, required=False, help_text="Answers wanted per item before it is done (1-20)."
    )
    review_fraction = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False,
        help_text="Share of each annotator's answers drawn at random for review (0-1).",
    )
    none_class = serializers.CharField(
        max_length=100, required=False, allow_null=True,
        help_text=(
            "Single-label projects: a name turns the \"none of these\" class on (or renames it); null turns it "
            "off (refused while answers use it). Multi-label projects refuse it: no class checked means none."
        ),
    )
    training_paused = serializers.BooleanField(
        required=False, help_text="Pause (true) or resume (false) training; labeling goes on either way."
    )
    encoder = serializers.ChoiceField(
        choices=Encoder.choices, required=False,
        help_text="What embeds the images; another encoder resets the model (labels stay).",
    )
    classes = ClassEntrySerializer(
        many=True,
        required=False,
        min_length=2,
        max_length=MAX_CLASSES,
        help_text=(
            "The whole class list, in order: entries with an id keep (rename, move) that class, entries "
            "without one are added, classes left out are removed (refused while answers use them)."
        ),
    )

    def validate(self, attrs):
        if hasattr(self.initial_data, "keys") and "multi_label" in self.initial_data:
            raise serializers.ValidationError(MULTI_LABEL_FIXED)
        return super().validate(attrs)
