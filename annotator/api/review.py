"""/api/projects/<id>/review/next/ (the next item to review) and .../reviews/ (a verdict):
owners and reviewers (annotator.access.REVIEW_ROLES)."""
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import REVIEW_ROLES
from annotator.api.schema import BODY_REFUSALS, ERROR, PROJECT_ID
from annotator.api.viewsets import ProjectScopedViewSet
from annotator.review.queue import next_for_review, queue_counts
from annotator.review.serializers import (
    QueueCountsSerializer,
    ReviewItemSerializer,
    ReviewSerializer,
    VerdictSerializer,
)
from annotator.review.verdicts import submit_review

NEXT_REPLY = inline_serializer("ReviewNext", {
    "next": ReviewItemSerializer(allow_null=True, help_text="The item to review, or null when the queue is empty."),
    "queue": QueueCountsSerializer(help_text="Unreviewed items per reason."),
})


class ReviewViewSet(ProjectScopedViewSet):
    """Reviewing answers."""

    roles = {"review_next": REVIEW_ROLES, "review": REVIEW_ROLES}

    @extend_schema(
        summary="The next item to review (owners and reviewers)",
        tags=["review"],
        parameters=[PROJECT_ID],
        description=(
            "The item the caller holds for review (its lease renewed), else the first item of the review "
            "queue, leased to the caller so no other reviewer gets it: its live answers, the model's guess, and "
            "`reasons`: disagreement (different labels), unsure (an unsure answer), suspect (the model, with the "
            "label held out, confidently disagrees), sample (drawn from an annotator's answers at the project's "
            "review_fraction). `next` is null when the queue is empty. No body."
        ),
        request=None,
        responses={200: NEXT_REPLY, **BODY_REFUSALS},
    )
    @action(detail=True, methods=["post"], url_path="review/next", url_name="review-next")
    def review_next(self, request, pk=None):
        candidate = next_for_review(self.project, request.user)
        body = ReviewItemSerializer(candidate, context={"request": request}).data if candidate else None
        return Response({"next": body, "queue": queue_counts(self.project)})

    @extend_schema(
        summary="Accept an item's answers or fix its labels (owners and reviewers)",
        tags=["review"],
        parameters=[PROJECT_ID],
        description=(
            "`accept`: the answers stand (refused when they disagree or when there is no label, as on an "
            "unsure-only item). `fix`: the item's labels become `label` (`labels` on a multi-label project): "
            "every live label is relabeled, each change kept in the answer's history; an item without a label "
            "gets the reviewer's answer (source review), so it trains the model. The item leaves the queue."
        ),
        request=VerdictSerializer,
        responses={201: ReviewSerializer, **BODY_REFUSALS,
                   409: OpenApiResponse(ERROR, description="Already reviewed, held by another reviewer, or "
                                                           "without answers.")},
    )
    @action(detail=True, methods=["post"], url_path="reviews", url_name="reviews")
    def review(self, request, pk=None):
        verdict = VerdictSerializer(data=request.data)
        verdict.is_valid(raise_exception=True)
        data = verdict.validated_data
        review = submit_review(self.project, request.user, item_id=data["item"], verdict=data["verdict"],
                               label=data.get("label"), labels=data.get("labels"))
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)

