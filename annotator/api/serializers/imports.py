"""Image and label uploads, and the reports of what each imported."""
from rest_framework import serializers

from annotator.importing import report
from annotator.importing.labels import LABEL_IMPORT_STATUSES
from annotator.importing.labelstudio import LS_IMPORT_STATUSES
from annotator.importing.suggestions import SOURCE_MAX_CHARS, SUGGESTION_STATUSES


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


class LabelStudioUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="Label Studio's JSON export: a list of tasks with data and annotations.")


class LabelStudioRowSerializer(LabelImportRowSerializer):
    line = serializers.IntegerField(help_text="The task's place in the list, from 1.")
    file = serializers.CharField(allow_blank=True, help_text="What the task was matched by: content hash or file name.")
    status = serializers.ChoiceField(choices=LS_IMPORT_STATUSES)


class LabelStudioReportSerializer(serializers.Serializer):
    applied = serializers.BooleanField(help_text="False: some tasks have problems, and nothing was imported.")
    detail = serializers.CharField(required=False, help_text="When nothing was imported: why.")
    imported = serializers.IntegerField()
    already_labeled = serializers.IntegerField()
    no_label = serializers.IntegerField()
    ready = serializers.IntegerField(help_text="Tasks that passed but were not imported, because others did not.")
    unknown_file = serializers.IntegerField()
    unknown_class = serializers.IntegerField()
    bad_row = serializers.IntegerField()
    rows = LabelStudioRowSerializer(many=True)


class SuggestionUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A UTF-8 CSV with the header file,class,score (score from 0 to 1).")
    source = serializers.CharField(
        required=False, allow_blank=True, max_length=SOURCE_MAX_CHARS,
        help_text="The name the guesses are shown with (default: the file's name).",
    )


class SuggestionRowSerializer(LabelImportRowSerializer):
    status = serializers.ChoiceField(choices=SUGGESTION_STATUSES)


class SuggestionReportSerializer(serializers.Serializer):
    applied = serializers.BooleanField(help_text="False: some rows have problems, and nothing was stored.")
    detail = serializers.CharField(required=False, help_text="When nothing was stored: why.")
    source = serializers.CharField()
    stored = serializers.IntegerField()
    ready = serializers.IntegerField(help_text="Rows that passed but were not stored, because others did not.")
    unknown_file = serializers.IntegerField()
    unknown_class = serializers.IntegerField()
    bad_row = serializers.IntegerField()
    rows = SuggestionRowSerializer(many=True)
