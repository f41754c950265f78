"""POST /api/projects/<id>/next/: the item the caller labels next; POST
/api/projects/<id>/answer-and-next/: an answer and the next item in one request (owners and
annotators)."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import LABELING_ROLES
from annotator.api.schema import BODY_REFUSALS, ERROR, PROJECT_ID
from annotator.api.viewsets import ProjectScopedViewSet
from annotator.labeling.answers import answer_and_next
from annotator.labeling.leasing import lease_next
from annotator.labeling.serializers import (
    AnswerAndNextResultSerializer,
    AnswerAndNextSerializer,
    LeasedItemSerializer,
    LeaseQuerySerializer,
)


class LeaseViewSet(ProjectScopedViewSet):
    """Leasing the next item to label."""

    roles = {"next_item": LABELING_ROLES, "answer_and_next": LABELING_ROLES}

    @extend_schema(
        summary="The caller's current item, or a newly leased one",
        tags=["labeling"],
        parameters=[PROJECT_ID],
        description=(
            "Returns the item the caller holds, refreshing its lease; otherwise leases the best "
            "available item. With `exclude`, returns another item than those (a prefetch); a caller "
            "holds at most two items. 204 when no item is available to the caller."
        ),
        request=LeaseQuerySerializer,
        responses={
            200: LeasedItemSerializer,
            204: OpenApiResponse(description="No item is available to the caller right now."),
            **BODY_REFUSALS,
        },
    )
    @action(detail=True, methods=["post"], url_path="next", url_name="next")
    def next_item(self, request, pk=None):
        serializer = LeaseQuerySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lease = lease_next(self.project, request.user, exclude=set(data["exclude"]), release=set(data["release"]))
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(LeasedItemSerializer(lease, context={"request": request}).data)

    @extend_schema(
        summary="Answer an item and get the next one, in one request",
        tags=["labeling"],
        parameters=[PROJECT_ID],
        description=(
            "The answer as `POST annotations/` takes it (exactly once per idempotency key: a retry "
            "returns the stored answer with 200), then the caller's next item as `POST next/` "
            "returns it, leaving out the items in `exclude`. One round trip per answer instead of "
            "two; a refused answer leases nothing."
        ),
        request=AnswerAndNextSerializer,
        responses={
            201: OpenApiResponse(AnswerAndNextResultSerializer, description="The answer was stored."),
            200: OpenApiResponse(AnswerAndNextResultSerializer, description="A retry: the answer stored earlier."),
            **BODY_REFUSALS,
            409: OpenApiResponse(ERROR, description="Not saved, as for `POST annotations/`; nothing leased."),
        },
    )
    @action(detail=True, methods=["post"], url_path="answer-and-next", url_name="answer-and-next")
    def answer_and_next(self, request, pk=None):
        serializer = AnswerAndNextSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = answer_and_next(
            self.project, request.user, item_id=data["item"], exclude=set(data["exclude"]),
            label=data.get("label"), labels=data.get("labels"), skip=data["skip"], unsure=data["unsure"],
            idempotency_key=data["idempotency_key"], duration_ms=data.get("duration_ms"),
        )
        body = AnswerAndNextResultSerializer(
            {"annotation": result.submitted.annotation, "next": result.next}, context={"request": request}
        ).data
        return Response(body, status=status.HTTP_201_CREATED if result.submitted.created else status.HTTP_200_OK)
