"""/api/projects/<id>/jobs/: the project's background jobs (owners only): imports of large
uploads (started by POST .../images/), export files (started here), their progress and
their files."""
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import OWNER_ROLES
from annotator.api.export import DOWNLOAD, AnyAccept, media_types
from annotator.api.schema import (
    BODY_REFUSALS,
    ERROR,
    FORBIDDEN,
    NOT_FOUND,
    NOT_FOUND_OR_PAGE,
    NOT_SIGNED_IN,
    PROJECT_ID,
    ROW_ID,
)
from annotator.api.serializers.jobs import ExportJobSerializer, JobSerializer
from annotator.api.viewsets import Pages, ProjectScopedViewSet
from annotator.jobs.download import file_response
from annotator.jobs.exports import start_export
from annotator.jobs.service import job_of, jobs_of

JOB_ID = OpenApiParameter("job_id", ROW_ID, OpenApiParameter.PATH, description="The job's id.")


def job_created(request, job):
    """202 with the job and its URL in Location: the work goes on in the worker."""
    data = JobSerializer(job, context={"request": request}).data
    url = request.build_absolute_uri(reverse("api:project-job", kwargs={"pk": job.project_id, "job_id": job.pk}))
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": url})


class JobViewSet(ProjectScopedViewSet):
    roles = {"jobs": OWNER_ROLES, "start_job": OWNER_ROLES, "job": OWNER_ROLES, "job_download": OWNER_ROLES}

    @extend_schema(
        summary="The project's background jobs, newest first (owners only)",
        tags=["jobs"], parameters=[PROJECT_ID],
        responses={200: JobSerializer(many=True), 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND_OR_PAGE},
    )
    @action(detail=True, methods=["get"], pagination_class=Pages)
    def jobs(self, request, pk=None):
        page = self.paginate_queryset(jobs_of(self.project).select_related("created_by"))
        return self.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        summary="Start an export job (owners only)",
        description=(
            "The export is written to a file by the task worker; follow the job (Location) and download "
            "its file from `download` once it has succeeded. The options are those of GET .../export/."
        ),
        tags=["jobs"], parameters=[PROJECT_ID], request=ExportJobSerializer,
        responses={202: JobSerializer, **BODY_REFUSALS},
    )
    @jobs.mapping.post
    def start_job(self, request, pk=None):
        serializer = ExportJobSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = start_export(self.project, user=request.user, fmt=data["format"],
                           predictions="1" if data["predictions"] else "0", min_confidence=data["min_confidence"])
        return job_created(request, job)

    @extend_schema(
        summary="One background job: status, progress, result (owners only)",
        tags=["jobs"], parameters=[PROJECT_ID, JOB_ID],
        responses={200: JobSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path=r"jobs/(?P<job_id>\d+)", url_name="job")
    def job(self, request, pk=None, job_id=None):
        return Response(JobSerializer(job_of(self.project, job_id), context={"request": request}).data)

    @extend_schema(
        summary="Download a finished job's file (owners only)",
        tags=["jobs"], parameters=[PROJECT_ID, JOB_ID],
        responses={
            **{(200, media_type): DOWNLOAD for media_type in media_types()},
            401: NOT_SIGNED_IN, 403: FORBIDDEN,
            404: OpenApiResponse(ERROR, description="Not a member, no such job, or the job has no file."),
            409: OpenApiResponse(ERROR, description="The job has not succeeded (yet)."),
        },
    )
    @action(detail=True, methods=["get"], url_path=r"jobs/(?P<job_id>\d+)/download", url_name="job-download",
            content_negotiation_class=AnyAccept)
    def job_download(self, request, pk=None, job_id=None):
        return file_response(request._request, job_of(self.project, job_id))
