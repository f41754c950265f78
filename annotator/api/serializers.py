"""Request and response shapes of the REST API. Every serializer lists its fields; none of
them writes: the views pass validated data to annotator.services."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator import importing
from annotator.models import Annotation, Membership, Project, Role, Strategy

MAX_ID = 2**63 - 1  # ids are 64-bit; larger numbers would fail in the database, not here


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="A sentence that says what went wrong and what to do.")


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text='Send it as "Authorization: Token <token>".')


# --- projects ------------------------------------------------------------------------------


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
    checked by services.create_project."""

    classes = serializers.ListField(
        child=serializers.CharField(max_length=100),
        min_length=2,
        help_text="Class names in the order the labeling page shows them, e.g. ['cat', 'dog'].",
    )
    strategy = serializers.ChoiceField(choices=Strategy.choices, required=False)

    class Meta:
        model = Project
        fields = ["name", "classes", "strategy", "query_batch_size", "audit_fraction", "annotations_per_item"]
        extra_kwargs = {
            "query_batch_size": {"help_text": "Items the model picks per ranking round (1-1000)."},
            "audit_fraction": {"help_text": "Share of served items drawn at random to measure the model (0-1)."},
            "annotations_per_item": {"help_text": "Answers wanted per item before it is done (1-20)."},
        }


# --- members -------------------------------------------------------------------------------


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role"]
        read_only_fields = fields


class MemberChangeSerializer(serializers.Serializer):
    username = serializers.CharField(help_text="An existing account.")
    role = serializers.ChoiceField(choices=Role.choices)


# --- import --------------------------------------------------------------------------------


class ImageUploadSerializer(serializers.Serializer):
    file = serializers.ListField(
        child=serializers.FileField(),
        help_text="Images (PNG, JPEG, ...) or zip archives of images; repeat the field for several files.",
    )


class ImportedFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=importing.STATUSES)
    reason = serializers.CharField(allow_blank=True, help_text="Why a file was a duplicate or was rejected.")
    item = serializers.IntegerField(
        allow_null=True, help_text="The new item (imported) or the existing one (duplicate); null when rejected."
    )


class ImportReportSerializer(serializers.Serializer):
    imported = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    files = ImportedFileSerializer(many=True)


# --- leasing -------------------------------------------------------------------------------


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


class ScoredClassSerializer(serializers.Serializer):
    label = serializers.CharField()
    confidence = serializers.FloatField()


class SuggestionSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="The model's guess, a class name.")
    confidence = serializers.FloatField()
    top = ScoredClassSerializer(many=True, help_text="The best-scored classes, best first.")


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
        url = lease.item.image_url()
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    @extend_schema_field(SuggestionSerializer(allow_null=True))
    def get_suggestion(self, lease):
        return lease.suggestion


# --- answers -------------------------------------------------------------------------------


class AnswerSerializer(serializers.Serializer):
    item = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The id from /next/.")
    label = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="A class name; leave out when skipping."
    )
    skip = serializers.BooleanField(required=False, default=False)
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


class AnnotationSerializer(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", read_only=True)
    label = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    annotator = serializers.CharField(source="annotator.username", read_only=True)
    suggestion = serializers.SerializerMethodField(help_text="The model's guess shown with the item, if any.")

    class Meta:
        model = Annotation
        fields = ["id", "item", "label", "skipped", "annotator", "created_at", "is_audit", "suggestion"]
        read_only_fields = fields

    @extend_schema_field(SuggestionSerializer(allow_null=True))
    def get_suggestion(self, annotation):
        return annotation.suggestion


# --- statistics ----------------------------------------------------------------------------


class StatsSerializer(serializers.Serializer):
    items = serializers.IntegerField()
    labeled = serializers.IntegerField(help_text="Items with at least one label.")
    skipped = serializers.IntegerField(help_text="Items only skipped so far.")
    per_class = serializers.DictField(child=serializers.IntegerField(), help_text="Labels per class name.")
    per_annotator = serializers.DictField(child=serializers.IntegerField(), help_text="Labels per username.")
