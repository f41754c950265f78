"""Image and label uploads, and the reports of what each imported."""
from rest_framework import serializers

from annotator.importing import report
from annotator.importing.labels import LABEL_IMPORT_STATUSES


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


class BucketImportSerializer(serializers.Serializer):
    url = serializers.CharField(
        required=False, allow_blank=True, max_length=1000,
        help_text="s3://bucket/prefix/ to register in place; empty or absent: the project's saved bucket source.",
    )


class BucketImportReportSerializer(serializers.Serializer):
    source = serializers.CharField(help_text="The s3:// URL imported (now the project's bucket source).")
    registered = serializers.IntegerField(help_text="New objects registered as items (not copied).")
    already_known = serializers.IntegerField(help_text="Keys registered before, or content the project already holds.")
    rejected = serializers.IntegerField()
    files = ImportedFileSerializer(many=True)


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
