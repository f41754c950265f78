"""/api/projects/<id>/items/: the pool's items with their labels and the model's guess
(every member), and owners' review of a suspect label."""
from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import parsers
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import OWNER_ROLES, NotFound, is_row_id
from annotator.api.permissions import ANY_MEMBER
from annotator.api.schema import (
    BODY_REFUSALS,
    ERROR,
    FORBIDDEN,
    INVALID,
    ITEM_ID,
    NOT_FOUND_OR_PAGE,
    NOT_SIGNED_IN,
    PROJECT_ID,
)
from annotator.api.serializers.items import (
    ItemQuerySerializer,
    ItemSerializer,
    ReviewResultSerializer,
    ReviewSerializer,
)
from annotator.api.viewsets import Pages, ProjectScopedViewSet
from annotator.labeling.corrections import review_item
from annotator.modelloop import predictions
from annotator.models import Annotation
from annotator.projects.selectors import select_items


class ItemViewSet(ProjectScopedViewSet):
    """The pool's items, and reviewing the labels the model doubts."""

    roles = {"items": ANY_MEMBER, "review": OWNER_ROLES}

    @extend_schema(
        summary="Items of the pool, filtered by state and by the model's guess",
        description=(
            "In pool order. `predicted`, `min_confidence` and `max_confidence` use the current model's "
            "probabilities; items it has not scored yet never match them."
        ),
        tags=["items"],
        parameters=[PROJECT_ID, ItemQuerySerializer],
        responses={
            200: ItemSerializer(many=True), 400: INVALID, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND_OR_PAGE,
        },
    )
    @action(detail=True, methods=["get"], pagination_class=Pages)
    def items(self, request, pk=None):
        query = ItemQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        current = predictions.current(self.project)
        selection = select_items(self.project, current=current, **query.validated_data)
        if isinstance(selection, QuerySet):
            selection = selection.prefetch_related(_live_labels())
        else:
            selection.queryset = selection.queryset.prefetch_related(_live_labels())
        page = self.paginate_queryset(selection)
        context = {"request": request, "predictions": current}
        return self.get_paginated_response(ItemSerializer(page, many=True, context=context).data)

    @extend_schema(
        summary="Keep or relabel a suspect label (owners only)",
        description=(
            "With `label`, every live label of the item becomes that class (each change kept in the answer's "
            "history); without, the labels stay. Either way the item is marked reviewed and leaves the suspect list."
        ),
        tags=["items"],
        parameters=[PROJECT_ID, ITEM_ID],
        request=ReviewSerializer,
        responses={200: ReviewResultSerializer, 409: OpenApiResponse(ERROR, description="The item has no live label."),
                   **BODY_REFUSALS},
    )
    @action(detail=True, methods=["post"], url_path=r"items/(?P<item_id>\d+)/review", url_name="item-review",
            parser_classes=[parsers.JSONParser])
    def review(self, request, pk=None, item_id=None):
        serializer = ReviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not is_row_id(item_id):
            raise NotFound(f"Item {item_id} is not in this project.")
        label = (serializer.validated_data.get("label") or "").strip() or None
        return Response(review_item(self.project, int(item_id), by=request.user, label=label))


def _live_labels():
    live = (Annotation.objects.filter(undone=False, skipped=False).select_related("label", "annotator")
            .prefetch_related("labels").order_by("id"))
    return Prefetch("annotations", queryset=live, to_attr="live_labels")
