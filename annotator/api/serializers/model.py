"""The model's side: live status, versions, and the bodies that reset it or load a checkpoint."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotator.modelloop.errors import one_line
from annotator.models import ModelVersion


class AccuracySerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="Audit answers that had a model guess.")
    correct = serializers.IntegerField()
    estimate = serializers.FloatField(allow_null=True, help_text="Share of audit guesses that were right.")
    low = serializers.FloatField(allow_null=True, help_text="95% Wilson interval, lower end.")
    high = serializers.FloatField(allow_null=True, help_text="95% Wilson interval, upper end.")
    # multi-label projects only: the estimate is the exact-set match; these measure the rest
    measure = serializers.CharField(required=False, help_text="Multi-label projects: \"exact set\".")
    hamming_loss = serializers.FloatField(
        required=False, allow_null=True, help_text="Multi-label projects: share of item-class decisions wrong.")
    macro_f1 = serializers.FloatField(required=False, allow_null=True, help_text="Multi-label projects: mean per-class F1.")
    per_class_f1 = serializers.DictField(
        child=serializers.FloatField(allow_null=True), required=False,
        help_text="Multi-label projects: F1 of each class (null for a class in no guess and no answer).")


class TrainerStatusSerializer(serializers.Serializer):
    phase = serializers.ChoiceField(choices=["waiting", "pretraining", "training", "up-to-date", "paused", "failed"])
    phase_label = serializers.CharField()
    progress = serializers.FloatField(allow_null=True, help_text="0-1 within the current phase, when known.")
    detail = serializers.CharField(allow_blank=True)
    version = serializers.IntegerField(allow_null=True, help_text="Number of the model version serving guesses.")
    version_kind = serializers.CharField(allow_null=True)
    labels_used = serializers.IntegerField(help_text="Human labels the current version learned from.")
    device = serializers.CharField(allow_blank=True)
    encoder = serializers.CharField(
        allow_null=True, help_text="What embedded the images of the current version (a pretrained encoder's name, "
        "or self-supervised)."
    )
    served_by = serializers.CharField(
        allow_null=True, help_text="Which representation made the current guesses: the encoder's, \"pixels\" "
        "when the pixel baseline predicted held-out labels better, or \"zero-shot\" when a CLIP encoder guessed "
        "from the class names alone (no label yet)."
    )
    error = serializers.CharField(allow_blank=True, help_text="Why the trainer stopped, in one line, when the phase is failed.")
    accuracy = AccuracySerializer(help_text="Accuracy of the model's guesses on audit items (drawn at random).")
    updated_at = serializers.DateTimeField()


class ModelVersionSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField(help_text="This version makes the guesses shown now.")
    audit_accuracy = serializers.SerializerMethodField(
        help_text="Accuracy of this version's guesses on audit items (drawn at random)."
    )
    durations = serializers.DictField(child=serializers.FloatField(), help_text="Seconds per step.")
    metrics = serializers.DictField(help_text="What the trainer measured (losses, validation scores...).")
    classes = serializers.ListField(child=serializers.CharField(), help_text="Class names of the probability columns.")
    error = serializers.SerializerMethodField(help_text="Why a failed run failed, in one line (the trainer's log "
                                              "has the details).")

    class Meta:
        model = ModelVersion
        fields = [
            "id", "number", "kind", "status", "labels_used", "pool_size", "generation", "classes", "strategy", "device",
            "durations", "metrics", "error", "created_at", "current", "audit_accuracy",
        ]
        read_only_fields = fields

    def get_error(self, version) -> str:
        return one_line(version.error)

    def get_current(self, version) -> bool:
        return version.pk == self.context.get("current_id")

    @extend_schema_field(AccuracySerializer)
    def get_audit_accuracy(self, version):
        empty = {"n": 0, "correct": 0, "estimate": None, "low": None, "high": None}
        return self.context.get("accuracies", {}).get(version.pk, empty)


class ModelResetSerializer(serializers.Serializer):
    clear_checkpoint = serializers.BooleanField(
        required=False, default=False,
        help_text="Also forget the uploaded checkpoint, so the model starts over with contrastive pretraining.",
    )


class CheckpointUploadSerializer(serializers.Serializer):
    checkpoint = serializers.FileField(
        help_text="A .pt/.pth/.ckpt/.bin or .safetensors file: a model exported from a project of this app, a "
        "PyTorch state dict of the same encoder, or a stock pretrained backbone's state dict (torchvision, DINOv2, "
        "timm, open_clip). Loaded with weights_only=True."
    )


class CheckpointReportSerializer(serializers.Serializer):
    name = serializers.CharField()
    matched = serializers.IntegerField(help_text="Encoder tensors the checkpoint provides.")
    total = serializers.IntegerField(help_text="Tensors of the project's encoder.")
    architecture = serializers.CharField()
    classes = serializers.ListField(child=serializers.CharField(), allow_null=True,
                                    help_text="The classes it was trained with, when it says.")
