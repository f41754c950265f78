"""/api/projects/<id>/images/ and /labels/import/: owners upload images (or zip archives of
them) and CSVs of existing labels; each answer reports what happened to every file or row."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import parsers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import OWNER_ROLES, Invalid
from annotator.api.jobs import job_created
from annotator.api.schema import BODY_REFUSALS, DISK_FULL, PROJECT_ID
from annotator.api.serializers.imports import (
    ImageUploadSerializer,
    ImportReportSerializer,
    LabelImportReportSerializer,
    LabelUploadSerializer,
)
from annotator.api.serializers.jobs import JobSerializer
from annotator.api.viewsets import ProjectScopedViewSet
from annotator.importing.images import import_uploads
from annotator.importing.labels import import_labels
from annotator.jobs.imports import start_import, wants_job

UPLOADS = [parsers.MultiPartParser, parsers.FormParser]


class ImportViewSet(ProjectScopedViewSet):
    """Image and label uploads (owners only)."""

    roles = {"images": OWNER_ROLES, "label_import": OWNER_ROLES}

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
