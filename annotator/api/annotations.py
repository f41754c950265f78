"""/api/projects/<id>/annotations/: answering items and undoing the last answer (owners and
annotators), the answers of a project with their history (every member), and owners'
corrections and deletions."""
from django.db.models import Prefetch, Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from annotator.access import LABELING_ROLES, OWNER_ROLES, Invalid, NotFound
from annotator.api.permissions import ANY_MEMBER
from annotator.api.schema import (
    ANNOTATION_ID,
    BODY_REFUSALS,
    ERROR,
    FORBIDDEN,
    INVALID,
    NOT_FOUND,
    NOT_FOUND_OR_PAGE,
    NOT_SIGNED_IN,
    PROJECT_ID,
    PROJECT_ROUTES,
)
from annotator.api.serializers.annotations import (
    AnnotationCorrectionSerializer,
    AnnotationDetailSerializer,
    AnnotationQuerySerializer,
    AnnotationRecordSerializer,
)
from annotator.api.viewsets import Pages, ProjectScopedViewSet
from annotator.labeling.answers import submit_annotation, undo_last
from annotator.labeling.corrections import correct_annotation, delete_annotation
from annotator.labeling.serializers import AnnotationSerializer, AnswerSerializer
from annotator.models import Annotation, AnnotationChange
from annotator.projects.classes import find_class


class AnnotationViewSet(ProjectScopedViewSet):
    """Answers: given by labelers, read by every member, corrected by owners."""

    roles = {
        "annotations": LABELING_ROLES,
        "list_annotations": ANY_MEMBER,
        "undo": LABELING_ROLES,
        "annotation": ANY_MEMBER,
        "correct": OWNER_ROLES,
        "remove": OWNER_ROLES,
    }

    @extend_schema(
        summary="Answer an item: a class name, or a skip",
        tags=["labeling"],
        parameters=[PROJECT_ID],
        description=(
            "Exactly once per idempotency key: a retry with the same key and body returns the "
            "stored answer with 200."
        ),
        request=AnswerSerializer,
        responses={
            201: OpenApiResponse(AnnotationSerializer, description="The answer was stored."),
            200: OpenApiResponse(AnnotationSerializer, description="A retry: the answer stored earlier."),
            **BODY_REFUSALS,
            409: OpenApiResponse(
                ERROR,
                description=(
                    "Not saved: the key was used for another answer, the caller already answered "
                    "the item, or the item was labeled by others after the caller's lease expired."
                ),
            ),
        },
    )
    @action(detail=True, methods=["post"], pagination_class=Pages)
    def annotations(self, request, pk=None):
        serializer = AnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = submit_annotation(
            self.project,
            request.user,
            item_id=data["item"],
            label=data.get("label"),
            labels=data.get("labels"),
            skip=data["skip"],
            unsure=data["unsure"],
            idempotency_key=data["idempotency_key"],
            duration_ms=data.get("duration_ms"),
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(AnnotationSerializer(result.annotation).data, status=code)

    @extend_schema(
        summary="Answers in the project, newest first",
        description="Live answers (labels and skips); `include_undone` adds deleted and undone ones.",
        tags=["annotations"],
        parameters=[PROJECT_ID, AnnotationQuerySerializer],
        responses={
            200: AnnotationRecordSerializer(many=True),
            400: INVALID,
            401: NOT_SIGNED_IN,
            403: FORBIDDEN,
            404: NOT_FOUND_OR_PAGE,
        },
    )
    @annotations.mapping.get
    def list_annotations(self, request, pk=None):
        query = AnnotationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = self.paginate_queryset(_filtered_annotations(self.project, query.validated_data))
        return self.get_paginated_response(AnnotationRecordSerializer(page, many=True).data)

    @extend_schema(
        summary="Undo the caller's last answer in the project",
        tags=["labeling"],
        parameters=[PROJECT_ID],
        description="The item becomes the caller's current item again (served by /next/).",
        request=None,
        responses={200: AnnotationSerializer, 400: INVALID, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], url_path="annotations/undo", url_name="annotations-undo")
    def undo(self, request, pk=None):
        return Response(AnnotationSerializer(undo_last(self.project, request.user)).data)

    @extend_schema(
        summary="One answer, with its history of corrections",
        description=PROJECT_ROUTES,
        tags=["annotations"],
        parameters=[PROJECT_ID, ANNOTATION_ID],
        responses={200: AnnotationDetailSerializer, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], url_path=r"annotations/(?P<annotation_id>\d+)", url_name="annotation")
    def annotation(self, request, pk=None, annotation_id=None):
        return Response(AnnotationDetailSerializer(_annotation(self.project, annotation_id)).data)

    @extend_schema(
        summary="Correct an answer's class, or a multi-label answer's classes (owners only)",
        description=("Send `label` (or, in a multi-label project, `labels`: the whole right set, [] for none). "
                     "The old answer is kept in the answer's history."),
        tags=["annotations"],
        parameters=[PROJECT_ID, ANNOTATION_ID],
        request=AnnotationCorrectionSerializer,
        responses={
            200: AnnotationDetailSerializer,
            **BODY_REFUSALS,
            409: OpenApiResponse(ERROR, description="The answer was deleted or undone."),
        },
    )
    @annotation.mapping.patch
    def correct(self, request, pk=None, annotation_id=None):
        serializer = AnnotationCorrectionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        correct_annotation(self.project, int(annotation_id), data.get("label"), labels=data.get("labels"),
                           by=request.user)
        return Response(AnnotationDetailSerializer(_annotation(self.project, annotation_id)).data)

    @extend_schema(
        summary="Delete an answer (owners only)",
        description=(
            "The answer is marked undone, never erased: it stays in the history (with `include_undone`) "
            "and its item goes back to the queue when it lacks answers."
        ),
        tags=["annotations"],
        parameters=[PROJECT_ID, ANNOTATION_ID],
        request=None,
        responses={
            204: OpenApiResponse(description="Deleted."),
            401: NOT_SIGNED_IN,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: OpenApiResponse(ERROR, description="The answer was already deleted or undone."),
        },
    )
    @annotation.mapping.delete
    def remove(self, request, pk=None, annotation_id=None):
        delete_annotation(self.project, int(annotation_id), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _filtered_annotations(project, query):
    annotations = Annotation.objects.filter(item__project=project)
    if not query["include_undone"]:
        annotations = annotations.filter(undone=False)
    if "annotator" in query:
        name = query["annotator"]
        # One answer for a missing account and an account outside the project: the filter
        # must not tell a member which usernames exist elsewhere.
        known = project.memberships.filter(user__username=name).exists() or Annotation.objects.filter(
            item__project=project, annotator__username=name).exists()
        if not known:
            raise Invalid(f"No member of this project, past or present, is named {name!r}.")
        annotations = annotations.filter(annotator__username=name)
    if "label" in query:
        wanted = find_class(project, query["label"])
        annotations = annotations.filter(Q(label=wanted) | Q(label_links__label=wanted))
    if "source" in query:
        annotations = annotations.filter(source=query["source"])
    if "item" in query:
        annotations = annotations.filter(item_id=query["item"])
    return annotations.select_related("item", "label", "annotator").prefetch_related("labels").order_by(
        "-created_at", "-id")


def _annotation(project, annotation_id):
    annotation = (
        Annotation.objects.filter(item__project=project, pk=int(annotation_id))
        .select_related("item", "label", "annotator")
        .prefetch_related("labels", Prefetch("changes", queryset=AnnotationChange.objects.select_related("changed_by")))
        .first()
    )
    if annotation is None:
        raise NotFound(f"Annotation {annotation_id} is not in this project.")
    return annotation
