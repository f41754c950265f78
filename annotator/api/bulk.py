"""/api/projects/<id>/annotations/bulk/: one answer for many items at once (owners and
annotators), the grid's candidates, and undoing a batch (its author or an owner)."""
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import LABELING_ROLES
from annotator.api.schema import BODY_REFUSALS, ERROR, FORBIDDEN, INVALID, NOT_FOUND, NOT_SIGNED_IN, PROJECT_ID
from annotator.api.serializers.bulk import (
    BulkAnswerSerializer,
    BulkBatchSerializer,
    CandidateQuerySerializer,
    CandidatesSerializer,
)
from annotator.api.viewsets import ProjectScopedViewSet
from annotator.labeling import candidates
from annotator.labeling.bulk import bulk_answer, undo_batch

BATCH = OpenApiParameter("batch", str, OpenApiParameter.PATH, description="The batch id a bulk answer returned.")


class BulkViewSet(ProjectScopedViewSet):
    """Bulk labeling from the model's guesses and its kNN graph."""

    roles = {"bulk": LABELING_ROLES, "bulk_candidates": LABELING_ROLES, "bulk_undo": LABELING_ROLES}

    @extend_schema(
        summary="Answer many items with one class (or one set of classes)",
        tags=["labeling"],
        parameters=[PROJECT_ID],
        description=(
            "All or nothing, in one transaction: every item must be in the project, open, and not yet "
            "answered by the caller. The answers are stored with `source` \"bulk\" and one `batch` id; "
            "they train the model but never count as audit answers. A retry with the same idempotency "
            "key and body returns the stored batch with 200."
        ),
        request=BulkAnswerSerializer,
        responses={
            201: OpenApiResponse(BulkBatchSerializer, description="The batch was stored."),
            200: OpenApiResponse(BulkBatchSerializer, description="A retry: the batch stored earlier."),
            **BODY_REFUSALS,
            409: OpenApiResponse(ERROR, description=(
                "Nothing saved: the key was used for another request, or some item was answered by the "
                "caller or is labeled or held by others.")),
        },
    )
    @action(detail=True, methods=["post"], url_path="annotations/bulk", url_name="annotations-bulk")
    def bulk(self, request, pk=None):
        serializer = BulkAnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = bulk_answer(self.project, request.user, items=data["items"], label=data.get("label") or None,
                             labels=data.get("labels"), idempotency_key=data["idempotency_key"])
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(BulkBatchSerializer(result).data, status=code)

    @extend_schema(
        summary="Images for the bulk-labeling grid",
        tags=["labeling"],
        parameters=[PROJECT_ID, CandidateQuerySerializer],
        description=(
            "With `label`: the open images the current model gives the highest probability of that class. "
            "With `similar_to`: that image (while the caller may answer it) and its nearest open images in "
            "the model's kNN graph. Open: not done, not answered by the caller, not held by others."
        ),
        responses={200: CandidatesSerializer, 400: INVALID, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path="annotations/bulk/candidates",
            url_name="annotations-bulk-candidates")
    def bulk_candidates(self, request, pk=None):
        query = request.query_params
        found = candidates.for_query(self.project, request.user, label=query.get("label"),
                                     similar_to=query.get("similar_to"), size=query.get("size"))
        return Response(CandidatesSerializer(found, context={"request": request}).data)

    @extend_schema(
        summary="Undo a bulk batch as one (its author or an owner)",
        tags=["labeling"],
        parameters=[PROJECT_ID, BATCH],
        description="Every live answer of the batch is marked undone; undoing it again changes nothing.",
        request=None,
        responses={200: BulkBatchSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path=r"annotations/bulk/(?P<batch>[0-9a-f]{32})/undo",
            url_name="annotations-bulk-undo")
    def bulk_undo(self, request, pk=None, batch=None):
        return Response(BulkBatchSerializer(undo_batch(self.project, request.user, batch)).data)
