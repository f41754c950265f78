"""POST /api/projects/<id>/next/: the item the caller labels next (owners and annotators)."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import LABELING_ROLES
from annotator.api.schema import BODY_REFUSALS, PROJECT_ID
from annotator.api.viewsets import ProjectScopedViewSet
from annotator.labeling.leasing import lease_next
from annotator.labeling.serializers import LeasedItemSerializer, LeaseQuerySerializer


class LeaseViewSet(ProjectScopedViewSet):
    """Leasing the next item to label."""

    roles = {"next_item": LABELING_ROLES}

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
