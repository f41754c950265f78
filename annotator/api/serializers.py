"""Request and response shapes of the REST API. Every serializer lists its fields; none of
them writes: the views pass validated data to annotator.services."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator.access import MAX_ID
from annotator.importing import report
from annotator.importing.labels import LABEL_IMPORT_STATUSES
from annotator.labeling.serializers import SuggestionSerializer
from annotator.models import Annotation, Membership, ModelVersion, Project, Role, Strategy
from annotator.projects.classes import MAX_CLASSES
from annotator.projects.selectors import ITEM_STATES

MAX_ID = MAX_ID  # larger numbers would fail in the database, not here


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
    checked by create_project."""

    classes = serializers.ListField(
        child=serializers.CharField(max_length=100),
        min_length=2,
        max_length=MAX_CLASSES,
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
    status = serializers.ChoiceField(choices=report.STATUSES)
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


# --- answers -------------------------------------------------------------------------------


# --- statistics ----------------------------------------------------------------------------


class StatsSerializer(serializers.Serializer):
    items = serializers.IntegerField()
    labeled = serializers.IntegerField(help_text="Items with at least one label.")
    skipped = serializers.IntegerField(help_text="Items only skipped so far.")
    per_class = serializers.DictField(child=serializers.IntegerField(), help_text="Labels per class name.")
    per_annotator = serializers.DictField(child=serializers.IntegerField(), help_text="Labels per username.")


class AccuracySerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="Audit answers that had a model guess.")
    correct = serializers.IntegerField()
    estimate = serializers.FloatField(allow_null=True, help_text="Share of audit guesses that were right.")
    low = serializers.FloatField(allow_null=True, help_text="95% Wilson interval, lower end.")
    high = serializers.FloatField(allow_null=True, help_text="95% Wilson interval, upper end.")


class TrainerStatusSerializer(serializers.Serializer):
    phase = serializers.ChoiceField(choices=["waiting", "pretraining", "training", "up-to-date", "paused", "failed"])
    phase_label = serializers.CharField()
    progress = serializers.FloatField(allow_null=True, help_text="0-1 within the current phase, when known.")
    detail = serializers.CharField(allow_blank=True)
    version = serializers.IntegerField(allow_null=True, help_text="Number of the model version serving guesses.")
    version_kind = serializers.CharField(allow_null=True)
    labels_used = serializers.IntegerField(help_text="Human labels the current version learned from.")
    device = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    accuracy = AccuracySerializer(help_text="Accuracy of the model's guesses on audit items (drawn at random).")
    updated_at = serializers.DateTimeField()


# --- project settings -------------------------------------------------------------------------


class SettingsClassSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Send it back in PATCH to keep (rename, move) this class.")
    name = serializers.CharField()
    hotkey = serializers.CharField(allow_blank=True)
    labels = serializers.IntegerField(help_text="Live labels of this class.")
    removable = serializers.BooleanField(help_text="False while any answer, live or deleted, refers to the class.")


class ProjectSettingsSerializer(serializers.Serializer):
    name = serializers.CharField()
    strategy = serializers.ChoiceField(choices=Strategy.choices)
    query_batch_size = serializers.IntegerField()
    audit_fraction = serializers.FloatField()
    annotations_per_item = serializers.IntegerField()
    training_paused = serializers.BooleanField(help_text="The trainer runs nothing for the project while true.")
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


class ProjectSettingsUpdateSerializer(serializers.Serializer):
    """Every field is optional; only those sent change."""

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
    training_paused = serializers.BooleanField(
        required=False, help_text="Pause (true) or resume (false) training; labeling goes on either way."
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
        unknown = sorted(set(self.initial_data) - set(self.fields)) if hasattr(self.initial_data, "keys") else []
        if unknown:
            raise serializers.ValidationError(
                f"Unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
                f"Settings are: {', '.join(self.fields)}."
            )
        if not attrs:
            raise serializers.ValidationError(f"Send at least one of: {', '.join(self.fields)}.")
        return attrs


# --- members -------------------------------------------------------------------------------------


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


# --- items -------------------------------------------------------------------------------------------


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
    label = serializers.CharField(source="label.name")
    annotator = serializers.CharField(source="annotator.username")
    source = serializers.ChoiceField(choices=Annotation.Source.choices)


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

    def get_image_url(self, item) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(item.image_url()) if request else item.image_url()

    @extend_schema_field(SuggestionSerializer(allow_null=True))
    def get_prediction(self, item):
        current = self.context.get("predictions")
        return current.suggestion(item) if current else None


# --- annotations as owners see them ----------------------------------------------------------------


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
    old_label = serializers.CharField(allow_blank=True, help_text="Empty for a skip.")
    new_label = serializers.CharField(allow_blank=True, help_text="Empty for a delete.")
    changed_by = serializers.CharField(source="changed_by.username", allow_null=True, default=None)
    at = serializers.DateTimeField()


class AnnotationRecordSerializer(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", read_only=True)
    file_name = serializers.CharField(source="item.original_name", read_only=True)
    label = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    annotator = serializers.CharField(source="annotator.username", read_only=True)
    suggestion = serializers.SerializerMethodField(help_text="The model's guess shown with the item, if any.")

    class Meta:
        model = Annotation
        fields = [
            "id", "item", "file_name", "label", "skipped", "annotator", "source", "is_audit", "undone",
            "duration_ms", "suggestion", "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(SuggestionSerializer(allow_null=True))
    def get_suggestion(self, annotation):
        return annotation.suggestion


class AnnotationDetailSerializer(AnnotationRecordSerializer):
    changes = AnnotationChangeSerializer(many=True, read_only=True, help_text="Corrections and deletion, oldest first.")

    class Meta(AnnotationRecordSerializer.Meta):
        fields = [*AnnotationRecordSerializer.Meta.fields, "changes"]
        read_only_fields = fields


class AnnotationCorrectionSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100, help_text="The right class name.")


# --- model versions -----------------------------------------------------------------------------------


class ModelVersionSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField(help_text="This version makes the guesses shown now.")
    audit_accuracy = serializers.SerializerMethodField(
        help_text="Accuracy of this version's guesses on audit items (drawn at random)."
    )
    durations = serializers.DictField(child=serializers.FloatField(), help_text="Seconds per step.")
    metrics = serializers.DictField(help_text="What the trainer measured (losses, validation scores...).")
    classes = serializers.ListField(child=serializers.CharField(), help_text="Class names of the probability columns.")

    class Meta:
        model = ModelVersion
        fields = [
            "id", "number", "kind", "status", "labels_used", "pool_size", "generation", "classes", "strategy", "device",
            "durations", "metrics", "error", "created_at", "current", "audit_accuracy",
        ]
        read_only_fields = fields

    def get_current(self, version) -> bool:
        return version.pk == self.context.get("current_id")

    @extend_schema_field(AccuracySerializer)
    def get_audit_accuracy(self, version):
        empty = {"n": 0, "correct": 0, "estimate": None, "low": None, "high": None}
        return self.context.get("accuracies", {}).get(version.pk, empty)


# --- label import -------------------------------------------------------------------------------------


class LabelUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A UTF-8 CSV with the header file,class (file name or content hash).")


class LabelImportRowSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    file = serializers.CharField(allow_blank=True)
    label = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=LABEL_IMPORT_STATUSES)
    reason = serializers.CharField(allow_blank=True)
    item = serializers.IntegerField(allow_null=True)


class LabelImportReportSerializer(serializers.Serializer):
    imported = serializers.IntegerField()
    unknown_file = serializers.IntegerField()
    unknown_class = serializers.IntegerField()
    already_labeled = serializers.IntegerField()
    bad_row = serializers.IntegerField()
    rows = LabelImportRowSerializer(many=True)


# --- steering the model and reviewing labels ------------------------------------------------------


class ModelResetSerializer(serializers.Serializer):
    clear_checkpoint = serializers.BooleanField(
        required=False, default=False,
        help_text="Also forget the uploaded checkpoint, so the model starts over with contrastive pretraining.",
    )


class CheckpointUploadSerializer(serializers.Serializer):
    checkpoint = serializers.FileField(
        help_text="A .pt/.pth/.ckpt/.bin file: a model exported from a project of this app, or a PyTorch state "
        "dict of the same encoder. Loaded with weights_only=True."
    )


class CheckpointReportSerializer(serializers.Serializer):
    name = serializers.CharField()
    matched = serializers.IntegerField(help_text="Encoder tensors the checkpoint provides.")
    total = serializers.IntegerField(help_text="Tensors of the project's encoder.")
    architecture = serializers.CharField()
    classes = serializers.ListField(child=serializers.CharField(), allow_null=True,
                                    help_text="The classes it was trained with, when it says.")


class ReviewSerializer(serializers.Serializer):
    label = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=100,
        help_text="Relabel every live label of the item to this class; leave out (or empty) to keep the labels.",
    )


class ReviewResultSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    changed = serializers.IntegerField(help_text="Labels that got the new class.")
    label = serializers.CharField(allow_null=True)


# --- dashboard -----------------------------------------------------------------------------------------


class AuditPointSerializer(serializers.Serializer):
    labels = serializers.FloatField(help_text="Mean number of labels the guessing models had (answer-weighted).")
    n = serializers.IntegerField(help_text="Audit answers in this bin.")
    correct = serializers.IntegerField()
    accuracy = serializers.FloatField()
    low = serializers.FloatField(allow_null=True, help_text="95% Wilson interval, lower end.")
    high = serializers.FloatField(allow_null=True, help_text="95% Wilson interval, upper end.")


class CvPointSerializer(serializers.Serializer):
    labels = serializers.IntegerField()
    version = serializers.IntegerField()
    accuracy = serializers.FloatField(help_text="5-fold cross-validated accuracy of propagation on the labels.")


class SlowRunSerializer(serializers.Serializer):
    labels = serializers.IntegerField()
    version = serializers.IntegerField()
    adopted = serializers.BooleanField(help_text="The fine-tuned encoder passed validation and serves now.")


class CurveSerializer(serializers.Serializer):
    audit = AuditPointSerializer(many=True)
    cv = CvPointSerializer(many=True)
    slow = SlowRunSerializer(many=True)


class UncertaintySerializer(serializers.Serializer):
    edges = serializers.ListField(child=serializers.FloatField(), help_text="Bin edges, 0 (certain) to 1 (uniform).")
    counts = serializers.ListField(child=serializers.IntegerField(), help_text="Unlabeled images per bin.")
    unlabeled = serializers.IntegerField(allow_null=True)
    mean = serializers.FloatField(allow_null=True)
    version = serializers.IntegerField()


class ClassBalanceSerializer(serializers.Serializer):
    names = serializers.ListField(child=serializers.CharField())
    labeled = serializers.ListField(child=serializers.IntegerField(), help_text="Live human labels per class.")
    predicted = serializers.ListField(
        child=serializers.IntegerField(), allow_null=True,
        help_text="The current model's guesses for the unlabeled images, per class (null before the first).",
    )


class ConfusedPairSerializer(serializers.Serializer):
    a = serializers.CharField()
    b = serializers.CharField()
    count = serializers.IntegerField(help_text="Labels of one class that the held-out guess calls the other.")
    a_as_b = serializers.IntegerField()
    b_as_a = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True, help_text="count / labels of the two classes.")


class SuspectLabelSerializer(serializers.Serializer):
    annotation = serializers.IntegerField()
    label = serializers.CharField()
    annotator = serializers.CharField()


class SuspectSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    name = serializers.CharField()
    image_url = serializers.CharField()
    labels = SuspectLabelSerializer(many=True, help_text="The item's live labels now.")
    human = serializers.CharField(help_text="The label the model checked.")
    guess = serializers.CharField(help_text="The model's guess with that label hidden from it.")
    confidence = serializers.FloatField()
    human_probability = serializers.FloatField(help_text="The probability the model gives the human label.")


class VersionRowSerializer(serializers.Serializer):
    pk = serializers.IntegerField()
    number = serializers.IntegerField()
    kind = serializers.CharField()
    labels_used = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    cv = serializers.FloatField(allow_null=True)
    adopted = serializers.CharField(allow_null=True)
    strategy = serializers.CharField(allow_blank=True)


class ModelSummarySerializer(serializers.Serializer):
    version = serializers.IntegerField(allow_null=True, help_text="The model version serving guesses now.")
    curve = CurveSerializer()
    uncertainty = UncertaintySerializer(allow_null=True)
    classes = ClassBalanceSerializer()
    confused = ConfusedPairSerializer(many=True)
    suspects = SuspectSerializer(many=True, help_text="Unreviewed, most confident first (at most 25).")
    suspects_flagged = serializers.IntegerField(help_text="Labels the current model confidently disagrees with.")
    suspect_min_confidence = serializers.FloatField()
    heldout_labels = serializers.IntegerField(help_text="Labels the current model checked (held out, 5-fold).")
    versions = VersionRowSerializer(many=True, help_text="The newest versions of the current model.")


class DashboardAnnotatorSerializer(serializers.Serializer):
    username = serializers.CharField()
    labels = serializers.IntegerField()
    skips = serializers.IntegerField()
    imported = serializers.IntegerField()
    skip_rate = serializers.FloatField(allow_null=True)
    median_ms = serializers.FloatField(allow_null=True)
    pairs = serializers.IntegerField()
    agreeing = serializers.IntegerField()
    agreement = serializers.FloatField(allow_null=True)


class AgreementSerializer(serializers.Serializer):
    pairs = serializers.IntegerField()
    agreeing = serializers.IntegerField()
    agreement = serializers.FloatField(allow_null=True)


class ProgressSerializer(serializers.Serializer):
    items = serializers.IntegerField()
    labeled = serializers.IntegerField()
    done = serializers.IntegerField()
    multi_labeled = serializers.IntegerField()
    skipped = serializers.IntegerField()
    remaining = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    untouched = serializers.IntegerField()


class ClassCountSerializer(serializers.Serializer):
    name = serializers.CharField()
    labels = serializers.IntegerField()


class DashboardSerializer(serializers.Serializer):
    progress = ProgressSerializer()
    per_class = ClassCountSerializer(many=True)
    annotators = DashboardAnnotatorSerializer(many=True)
    agreement = AgreementSerializer()
    model = ModelSummarySerializer()
    fields = serializers.DictField(child=serializers.CharField(), help_text="Texts the dashboard page refreshes.")
