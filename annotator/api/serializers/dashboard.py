"""The numbers of a project: labeling progress (stats) and the dashboard."""
from rest_framework import serializers


class StatsSerializer(serializers.Serializer):
    items = serializers.IntegerField()
    labeled = serializers.IntegerField(help_text="Items with at least one label.")
    skipped = serializers.IntegerField(help_text="Items only skipped so far.")
    per_class = serializers.DictField(child=serializers.IntegerField(), help_text="Labels per class name.")
    per_annotator = serializers.DictField(child=serializers.IntegerField(), help_text="Labels per username.")


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
    set_audit = serializers.DictField(
        allow_null=True, help_text="Multi-label projects: the audit accuracy as the status gives it (exact-set "
        "match, Wilson interval, hamming_loss, macro_f1, per_class_f1); null otherwise.")


class DashboardAnnotatorSerializer(serializers.Serializer):
    username = serializers.CharField()
    labels = serializers.IntegerField()
    skips = serializers.IntegerField()
    imported = serializers.IntegerField()
    skip_rate = serializers.FloatField(allow_null=True)
    median_ms = serializers.FloatField(allow_null=True)
    pairs = serializers.IntegerField()
    agreeing = serializers.FloatField(
        help_text="Pairs naming the same class; in a multi-label project the sum of the pairs' Jaccard overlaps.")
    agreement = serializers.FloatField(allow_null=True, help_text="agreeing / pairs.")
    reviewed = serializers.IntegerField(help_text="Their labels judged in reviews.")
    review_correct = serializers.IntegerField(help_text="Of those, the ones the review upheld.")
    review_accuracy = serializers.FloatField(allow_null=True, help_text="review_correct / reviewed.")


class AlphaSerializer(serializers.Serializer):
    alpha = serializers.FloatField(allow_null=True, help_text=(
        "Krippendorff's alpha over the items with two or more live labels: 1 perfect agreement, about 0 "
        "chance; null when undefined (no pairs, or every label the same class)."))
    values = serializers.IntegerField(help_text="Pairable labels it was computed on.")
    items = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["nominal", "per-class mean"], help_text=(
        "nominal (single-label); multi-label: the mean over classes of the binary alpha per class."))
    per_class = serializers.DictField(child=serializers.FloatField(allow_null=True), required=False,
                                      help_text="Multi-label projects: alpha per class name.")


class AgreementSerializer(serializers.Serializer):
    pairs = serializers.IntegerField()
    agreeing = serializers.FloatField(
        help_text="Pairs naming the same class; in a multi-label project the sum of the pairs' Jaccard overlaps.")
    agreement = serializers.FloatField(allow_null=True, help_text="agreeing / pairs.")
    krippendorff = AlphaSerializer()


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
