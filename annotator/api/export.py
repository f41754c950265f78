"""Export downloads: `/projects/<pk>/export/` for the browser (session; anonymous users are
sent to the sign-in page) and `GET /api/projects/<pk>/export/` for API clients (token or
session; anonymous callers get 401). Every member may export (owners, annotators and
viewers: the labels are their own work); outsiders get 404.

Query parameters: `format` = a name in annotator.exporting.registry (default csv; the
schema's enum, file types and responses come from there), `predictions=1` with
`min_confidence` (0-1, default 0.9) for the label formats. DRF's own `?format=` switch is
off (URL_FORMAT_OVERRIDE = None), so the parameter is ours.

The API view is a DRF APIView (token or session auth, 401 for anonymous callers, and its
place in the OpenAPI schema) that returns a plain StreamingHttpResponse; DRF's content
negotiation is bypassed so any Accept header gets the file.

The body is streamed (annotator.exporting produces it chunk by chunk). Under ASGI a
synchronous iterator would be read whole into memory by Django before the first byte is
sent, so there each chunk is pulled in the request's sync thread from an async iterator.
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from annotator.access import project_for
from annotator.api.exceptions import ServiceErrorsMixin
from annotator.api.schema import PROJECT_ID, ErrorSerializer
from annotator.exporting import formats
from annotator.exporting.download import streaming_response
from annotator.exporting.registry import DEFAULT_FORMAT, REGISTRY


class AnyAccept(BaseContentNegotiation):
    """The download is a file whatever the Accept header says; refusals are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def media_types():
    """{media type: the formats sent as it}, in the registry's order."""
    by_type = {}
    for export_format in REGISTRY.values():
        by_type.setdefault(export_format.media_type, []).append(export_format)
    return by_type


def _download_description():
    """Which format comes as which type: "text/csv (csv), ..., application/octet-stream (model: .pt,
    embeddings: .npz)"; formats that share a type are told apart by their file suffix."""
    parts = []
    for media_type, shared in media_types().items():
        names = shared[0].name if len(shared) == 1 else ", ".join(f"{f.name}: {f.suffix}" for f in shared)
        parts.append(f"{media_type} ({names})")
    return f"The file, as an attachment: {', '.join(parts)}."


DOWNLOAD = OpenApiResponse(OpenApiTypes.BINARY, description=_download_description())


class ProjectExportView(ServiceErrorsMixin, APIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = AnyAccept

    @extend_schema(
        operation_id="projects_export",
        summary="Download the project's labels, images, model or embeddings (members)",
        description=(
            "Streamed. `csv` and `jsonl`: one row per labeled item (majority class, annotators, latest answer "
            "time, vote distribution, source human/import, the model's guess and confidence). `imagefolder`: a zip "
            "of class folders with metadata.csv, loadable by torchvision ImageFolder and Hugging Face imagefolder, "
            "optionally split into train/val/test (`split`, `seed`). `yolo-classify`: Ultralytics' classification "
            "layout (train/ and val/ of class folders). `fiftyone`: FiftyOne's image classification layout "
            "(data/ and labels.json). `labelstudio`: a zip of Label Studio tasks (one per item: the answers as "
            "annotations, the model's guess as a prediction), its labeling config and the images. "
            "`predictions=1` adds unlabeled items whose model guess reaches `min_confidence` (source `model`). "
            "`model`: the latest checkpoint; `embeddings`: an .npz with embeddings, pool_index and item_id."
        ),
        tags=["export"],
        parameters=[
            PROJECT_ID,
            OpenApiParameter("format", str, enum=list(REGISTRY), default=DEFAULT_FORMAT,
                             description="What to download."),
            OpenApiParameter("predictions", bool, default=False,
                             description="Also export unlabeled items by the model's guess (label formats)."),
            OpenApiParameter("min_confidence", float, default=formats.DEFAULT_MIN_CONFIDENCE,
                             description="With predictions: the least confidence (0 to 1) of an exported guess."),
            OpenApiParameter("split", str, description=(
                "Class-folder formats (" + ", ".join(f.name for f in REGISTRY.values() if f.splits) + "): "
                "train,val[,test] fractions adding up to 1, e.g. `0.8,0.1,0.1`; each class is split in these "
                "proportions into train/, val/ and test/ folders. yolo-classify always splits (default 0.8,0.2).")),
            OpenApiParameter("seed", int, default=0,
                             description="With split: the seed of the draw (0 to 4294967295); same seed, same split."),
        ],
        responses={
            **{(200, media_type): DOWNLOAD for media_type in media_types()},
            400: OpenApiResponse(ErrorSerializer,
                                 description="Unknown format or a bad option; the message says what to change."),
            401: OpenApiResponse(ErrorSerializer, description="Not signed in."),
            404: OpenApiResponse(ErrorSerializer,
                                 description="Not a member (or no such project), or no trained model yet."),
        },
    )
    def get(self, request, pk):
        project = project_for(request.user, pk)
        return streaming_response(request._request, project)
