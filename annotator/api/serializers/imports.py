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


class BucketImportSerializer(serializers.Serializer):
    url = serializers.CharField(
        required=False, allow_blank=True, max_length=1000,
        help_text="s3://bucket/prefix/ to register in place; empty or absent: the project's saved bucket source.",
    )
    background = serializers.BooleanField(
        required=False, default=False,
        help_text="Run the import as a background job (202 with the job) instead of inside the request.",
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


class LabelStudioUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="Label Studio's JSON export: a list of tasks with data and annotations.")


class LabelStudioRowSerializer(LabelImportRowSerializer):
    line = serializers.IntegerField(help_text="The task's place in the list, from 1.")
    file = serializers.CharField(allow_blank=True, help_text="What the task was matched by: content hash or file name.")
    status = serializers.ChoiceField(choices=LS_IMPORT_STATUSES)


class SuggestionUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A UTF-8 CSV with the header file,class,score (score from 0 to 1).")
    source = serializers.CharField(
        required=False, allow_blank=True, max_length=SOURCE_MAX_CHARS,
        help_text="The name the guesses are shown with (default: the file's name).",
    )


class SuggestionRowSerializer(LabelImportRowSerializer):
    status = serializers.ChoiceField(choices=SUGGESTION_STATUSES)


def _all_or_nothing_report(name, statuses, row_serializer, *, refusal, what, **extra):
    """The answer of an all-or-nothing import: the counts per status and every row's outcome;
    as the 400 `refusal`, `detail` with the rest when rows have problems, `detail` alone when
    the file could not be read, or the form fields' errors ({"file": [...]})."""
    fields = {
        "applied": serializers.BooleanField(
            required=not refusal, help_text=f"False: some {what} have problems, and nothing was written."),
        **{status: serializers.IntegerField(required=not refusal) for status in statuses},
        "rows": row_serializer(many=True, required=not refusal),
        **{key: field_class(required=not refusal, **kwargs) for key, (field_class, kwargs) in extra.items()},
        "detail": serializers.CharField(
            required=False, help_text="Why nothing was written, and what to do (on a refusal only)."),
    }
    return type(name, (serializers.Serializer,), fields)


LabelStudioReportSerializer = _all_or_nothing_report(
    "LabelStudioReportSerializer", LS_IMPORT_STATUSES, LabelStudioRowSerializer, refusal=False, what="tasks")
LabelStudioRefusalSerializer = _all_or_nothing_report(
    "LabelStudioRefusalSerializer", LS_IMPORT_STATUSES, LabelStudioRowSerializer, refusal=True, what="tasks")
_SOURCE = (serializers.CharField, {"help_text": "The name the guesses are shown with."})
SuggestionReportSerializer = _all_or_nothing_report(
    "SuggestionReportSerializer", SUGGESTION_STATUSES, SuggestionRowSerializer, refusal=False, what="rows",
    source=_SOURCE)
SuggestionRefusalSerializer = _all_or_nothing_report(
    "SuggestionRefusalSerializer", SUGGESTION_STATUSES, SuggestionRowSerializer, refusal=True, what="rows",
    source=_SOURCE)
