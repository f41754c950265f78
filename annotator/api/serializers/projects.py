"""Projects as the API shows them, and the body that creates one."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator.models import Project, Role, Strategy
from annotator.projects.classes import MAX_CLASSES


class LabelClassSerializer(serializers.Serializer):
    name = serializers.CharField()
    hotkey = serializers.CharField(help_text="The key that picks this class on the labeling page (may be empty).")


class ProjectSerializer(serializers.ModelSerializer):
    classes = serializers.SerializerMethodField(help_text="Class names, in order.")
    class_details = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField(help_text="The caller's role in the project.")

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "slug",
            "classes",
            "class_details",
            "strategy",
            "query_batch_size",
            "audit_fraction",
            "annotations_per_item",
            "multi_label",
            "role",
        ]
        read_only_fields = fields

    # `classes.all()` keeps the model's order ("order", "id") and uses the view's prefetch.
    def get_classes(self, project) -> list[str]:
        return [c.name for c in project.classes.all()]

    @extend_schema_field(LabelClassSerializer(many=True))
    def get_class_details(self, project):
        return [{"name": c.name, "hotkey": c.hotkey} for c in project.classes.all()]

    @extend_schema_field(serializers.ChoiceField(choices=Role.choices))
    def get_role(self, project):
        return project.current_role


class ProjectCreateSerializer(serializers.ModelSerializer):
    """The model's own field validators (ranges, strategy choices) apply; the class list is
    checked by create_project."""

    classes = serializers.ListField(
        child=serializers.CharField(max_length=100),
        min_length=2,
        max_length=MAX_CLASSES,
        help_text="Class names in the order the labeling page shows them, e.g. ['cat', 'dog'].",
    )
    strategy = serializers.ChoiceField(choices=Strategy.choices, required=False)
    none_class = serializers.CharField(
        max_length=100, required=False,
        help_text=(
            "Single-label projects: add a \"none of these\" class with this name after the classes (an exclusive "
            "class with key N). Multi-label projects refuse it: an answer with no class already means none."
        ),
    )

    class Meta:
        model = Project
        fields = [
            "name", "classes", "strategy", "query_batch_size", "audit_fraction", "annotations_per_item", "multi_label",
            "review_fraction", "none_class",
        ]
        extra_kwargs = {
            "review_fraction": {"help_text": "Share of each annotator's answers drawn at random for review (0-1)."},
            "multi_label": {"help_text": "An answer is a set of classes (fixed at creation; default false)."},
            "query_batch_size": {"help_text": "Items the model picks per ranking round (1-1000)."},
            "audit_fraction": {"help_text": "Share of served items drawn at random to measure the model (0-1)."},
            "annotations_per_item": {"help_text": "Answers wanted per item before it is done (1-20)."},
        }
