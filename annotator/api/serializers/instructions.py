"""A project's labeling instructions (GET) and the body that changes them (PATCH)."""
from rest_framework import serializers

from annotator.access import MAX_ID
from annotator.api.serializers.project_settings import KnownFieldsOnly
from annotator.projects.classes import MAX_CLASSES
from annotator.projects.instructions import MAX_DESCRIPTION_CHARS, MAX_EXAMPLES, MAX_INSTRUCTIONS_CHARS


class ExampleSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The item's id.")
    name = serializers.CharField()
    image_url = serializers.CharField(help_text="The member-checked image URL.")


class ClassInstructionsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    hotkey = serializers.CharField(allow_blank=True)
    description = serializers.CharField(allow_blank=True, help_text="Markdown, as the owners wrote it.")
    description_html = serializers.CharField(allow_blank=True, help_text="The description rendered and sanitised.")
    examples = ExampleSerializer(many=True)


class InstructionsSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="Grows with every change; the labeling page shows a newer one again.")
    markdown = serializers.CharField(allow_blank=True, help_text="The instructions as the owners wrote them (Markdown).")
    html = serializers.CharField(allow_blank=True, help_text="The instructions rendered and sanitised.")
    has_content = serializers.BooleanField(help_text="False when there is nothing to show.")
    classes = ClassInstructionsSerializer(many=True, help_text="In the order of the labeling buttons.")


class ClassInstructionsUpdateSerializer(serializers.Serializer):
    id = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The class's id (GET settings/ lists them).")
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION_CHARS, allow_blank=True, required=False, trim_whitespace=False,
        help_text=f"Markdown, at most {MAX_DESCRIPTION_CHARS} characters.",
    )
    examples = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        max_length=MAX_EXAMPLES,
        required=False,
        help_text=f"Ids of this project's items shown as examples (at most {MAX_EXAMPLES}); the whole new list.",
    )


class InstructionsUpdateSerializer(KnownFieldsOnly, serializers.Serializer):
    """Every field is optional; only what is sent changes."""

    markdown = serializers.CharField(
        max_length=MAX_INSTRUCTIONS_CHARS, allow_blank=True, required=False, trim_whitespace=False,
        help_text=f"The instructions (Markdown, at most {MAX_INSTRUCTIONS_CHARS} characters); empty removes them.",
    )
    classes = ClassInstructionsUpdateSerializer(
        many=True, required=False, max_length=MAX_CLASSES,
        help_text="Only the classes that change; each names its id.",
    )
