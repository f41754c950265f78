"""/api/projects/<id>/images/, /bucket-import/, /labels/import/, /labels/import-labelstudio/
and /suggestions/import/: owners upload images (or zip archives of them), register a bucket's
images in place, and upload CSVs of existing labels, Label Studio JSON exports and other
tools' guesses; each answer reports what happened to every file, object, row or task."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import parsers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import OWNER_ROLES, Invalid
from annotator.api.jobs import job_created
from annotator.api.schema import BODY_REFUSALS, DISK_FULL, PROJECT_ID
from annotator.api.serializers.imports import (
    BucketImportReportSerializer,
    BucketImportSerializer,
    ImageUploadSerializer,
    ImportReportSerializer,
    LabelImportReportSerializer,
    LabelStudioRefusalSerializer,
    LabelStudioReportSerializer,
    LabelStudioUploadSerializer,
    LabelUploadSerializer,
    SuggestionRefusalSerializer,
    SuggestionReportSerializer,
    SuggestionUploadSerializer,
)
from annotator.api.serializers.jobs import JobSerializer
from annotator.api.viewsets import ProjectScopedViewSet
from annotator.importing.bucket import import_bucket, report_dict, saved_source
from annotator.importing.images import import_uploads
from annotator.importing.labels import import_labels
from annotator.importing.labelstudio import import_labelstudio
from annotator.importing.suggestions import import_suggestions
from annotator.jobs.bucket import start_bucket_import
from annotator.jobs.imports import start_import, wants_job

UPLOADS = [parsers.MultiPartParser, parsers.FormParser]


class ImportViewSet(ProjectScopedViewSet):
    """Image and label uploads (owners only)."""

    roles = {"images": OWNER_ROLES, "bucket_import": OWNER_ROLES, "label_import": OWNER_ROLES,
             "labelstudio_import": OWNER_ROLES, "suggestion_import": OWNER_ROLES}

    @extend_schema(
        summary="Upload images or zip archives of images (owners only)",
        description=(
            "Each file is checked (a real image within the size limits) and de-duplicated by content; "
            "the report says what happened to every file. Uploads of IMPORT_JOB_MIN_BYTES or more in all "
            "(64 MiB by default) are saved and imported by a background job instead: the answer is then 202 "
            "with the job (its Location; the report is the job's `result` once it has succeeded)."
        ),
        tags=["import"],
        parameters=[PROJECT_ID],
        request={"multipart/form-data": ImageUploadSerializer},
        responses={
            201: OpenApiResponse(ImportReportSerializer, description="At least one image was imported."),
            200: OpenApiResponse(ImportReportSerializer, description="Nothing new: duplicates or rejected files."),
            202: OpenApiResponse(JobSerializer, description="A large upload: saved, and imported by this job."),
            **BODY_REFUSALS,
            507: DISK_FULL,
        },
    )
    @action(detail=True, methods=["post"], parser_classes=UPLOADS)
    def images(self, request, pk=None):
        files = request.FILES.getlist("file")
        if not files:
            raise Invalid("Attach one or more images or zip archives in the multipart field 'file'.")
        if wants_job(files):
            return job_created(request, start_import(self.project, files, user=request.user))
        report = import_uploads(self.project, files, user=request.user).as_dict()
        code = status.HTTP_201_CREATED if report["imported"] else status.HTTP_200_OK
        return Response(report, status=code)

    @extend_schema(
        summary="Register a bucket's images in place (owners only)",
        description=(
            "Lists s3://bucket/prefix/ (read with the server's credentials, never the caller's), checks each new "
            "object like an upload (size, pixels, a full decode) and registers it without copying it. Keys "
            "registered before are skipped, so running it again registers new objects only. The URL is saved "
            "as the project's bucket source; without one, the saved source is imported again. With "
            "`background`, a job does it (202 with the job; its `result` is the report once it has succeeded): "
            "for prefixes too large to list and check while the caller waits."
        ),
        tags=["import"],
        parameters=[PROJECT_ID],
        request=BucketImportSerializer,
        responses={
            201: OpenApiResponse(BucketImportReportSerializer, description="At least one object was registered."),
            200: OpenApiResponse(BucketImportReportSerializer, description="Nothing new."),
            202: OpenApiResponse(JobSerializer, description="`background`: the import runs in this job."),
            **BODY_REFUSALS,
        },
    )
    @action(detail=True, methods=["post"], url_path="bucket-import", url_name="bucket-import")
    def bucket_import(self, request, pk=None):
        serializer = BucketImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        url = serializer.validated_data.get("url", "").strip() or saved_source(self.project)
        if serializer.validated_data["background"]:
            return job_created(request, start_bucket_import(self.project, url, user=request.user))
        report = import_bucket(self.project, url, user=request.user)
        body = report_dict(url, report)
        return Response(body, status=status.HTTP_201_CREATED if body["registered"] else status.HTTP_200_OK)

    @extend_schema(
        summary="Import existing labels from a CSV (owners only)",
        description=(
            "A UTF-8 CSV with the header `file,class`: an image's original file name (or its content "
            "hash) and its class. Each row becomes an imported answer of the caller, unless the image "
            "already has a label; importing the same CSV twice adds nothing the second time. The "
            "report gives every row's outcome. A file that cannot be read imports nothing."
        ),
        tags=["import"],
        parameters=[PROJECT_ID],
        request={"multipart/form-data": LabelUploadSerializer},
        responses={
            200: LabelImportReportSerializer,
            **BODY_REFUSALS,
        },
    )
    @action(detail=True, methods=["post"], url_path="labels/import", url_name="label-import", parser_classes=UPLOADS)
    def label_import(self, request, pk=None):
        serializer = LabelUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(import_labels(self.project, request.user, serializer.validated_data["file"]))

    @extend_schema(
        summary="Import labels from a Label Studio JSON export (owners only)",
        description=(
            "Label Studio's JSON export (a list of tasks). A task is matched to an image by `data.sha256`, else "
            "by the file name at the end of `data.image` (a Label Studio upload's 8-character prefix is tried "
            "without it); its label is the majority class of its `choices` results in annotations that were not "
            "cancelled. All or nothing: when any task has an unknown image or class or cannot be read, nothing is "
            "imported (400, with every task's outcome). Images that already have a label are left alone."
        ),
        tags=["import"],
        parameters=[PROJECT_ID],
        request={"multipart/form-data": LabelStudioUploadSerializer},
        responses={
            200: LabelStudioReportSerializer,
            400: OpenApiResponse(LabelStudioRefusalSerializer, description=(
                "Some tasks have problems and nothing was imported (`detail`, `rows`), the file is not a Label "
                "Studio export (`detail` only), or a form field is missing (`file`).")),
            **{code: response for code, response in BODY_REFUSALS.items() if code != 400},
        },
    )
    @action(detail=True, methods=["post"], url_path="labels/import-labelstudio", url_name="labelstudio-import",
            parser_classes=UPLOADS)
    def labelstudio_import(self, request, pk=None):
        serializer = LabelStudioUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = import_labelstudio(self.project, request.user, serializer.validated_data["file"])
        return _all_or_nothing(report, "tasks")

    @extend_schema(
        summary="Import another tool's guesses from a CSV (owners only)",
        description=(
            "A UTF-8 CSV with the header `file,class,score`: an image's original file name (or content hash), "
            "a class and a score from 0 to 1. Each becomes the image's `external_suggestion`, shown as the guess "
            "on the labeling page and in `next/` (with its `source`) while the project's model has no guess for "
            "the image. All or nothing: when any row has a problem nothing is stored (400, with every row's "
            "outcome). Importing again replaces the guesses of the images it names."
        ),
        tags=["import"],
        parameters=[PROJECT_ID],
        request={"multipart/form-data": SuggestionUploadSerializer},
        responses={
            200: SuggestionReportSerializer,
            400: OpenApiResponse(SuggestionRefusalSerializer, description=(
                "Some rows have problems and nothing was stored (`detail`, `rows`), or the file cannot be read "
                "(`detail` only), or a form field is wrong (`file`, `source`).")),
            **{code: response for code, response in BODY_REFUSALS.items() if code != 400},
        },
    )
    @action(detail=True, methods=["post"], url_path="suggestions/import", url_name="suggestion-import",
            parser_classes=UPLOADS)
    def suggestion_import(self, request, pk=None):
        serializer = SuggestionUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        report = import_suggestions(self.project, data["file"], source=data.get("source", ""))
        return _all_or_nothing(report, "rows")


def _all_or_nothing(report, what):
    """200 with the report, or 400 with it and a `detail` when nothing was written."""
    if report["applied"]:
        return Response(report)
    problems = sum(report[status] for status in ("unknown_file", "unknown_class", "bad_row"))
    detail = (f"{problems} of the {len(report['rows'])} {what} have problems, so nothing was imported. "
              f"Fix them (see rows) and upload the file again.")
    return Response({"detail": detail, **report}, status=status.HTTP_400_BAD_REQUEST)
