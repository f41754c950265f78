"""GET /api/encoders/: the encoders a project can use on this server, and whether the weights
of each pretrained one are present (and, for timm and open_clip, their package installed).
Reads mlcore's plain-data catalog and looks for files; it never imports torch and never
downloads."""
from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.api.schema import NOT_SIGNED_IN
from annotator.api.serializers.encoders import EncoderSerializer
from annotator.models import Encoder
from mlcore.encoders import catalog

AUTO = (
    "`auto` (the default of a new project) takes, for colour photos, the first of "
    f"{', '.join(catalog.PREFERENCE)} whose weights are present and package installed (the entry with "
    "`auto_for_photos`); "
    "for grayscale or tiny images, or when no weights are present, self-supervised pretraining "
    "on the project's own images."
)


def encoders():
    """One dict per encoder a project can choose (every Encoder choice but `auto`), in the
    choices' order."""
    dirs = catalog.weight_dirs(settings.WEIGHTS_DIR)
    found = {name: catalog.find_weights(name, dirs) for name in catalog.PRETRAINED}
    missing = {name: catalog.missing_package(name) for name in catalog.PRETRAINED}
    auto = next((name for name in catalog.PREFERENCE if found.get(name) is not None and missing[name] is None),
                Encoder.SELF_SUPERVISED)
    rows = []
    for value, label in Encoder.choices:
        if value == Encoder.AUTO:
            continue
        if value == Encoder.SELF_SUPERVISED:
            rows.append({
                "name": value, "title": str(label), "family": "selfsup",
                "description": "Contrastive pretraining (SimCLR) on the project's own images; needs no weight file.",
                "input_size": None, "out_dim": None, "weights_present": True, "weights_file": None,
                "weight_files": [], "auto_for_photos": auto == value, "package": None, "package_installed": True,
                "zero_shot": False,
            })
            continue
        spec = catalog.PRETRAINED[value]
        path = found[value]
        rows.append({
            "name": value, "title": str(label), "family": spec.family, "description": spec.description,
            "input_size": spec.input_size, "out_dim": spec.out_dim,
            "weights_present": path is not None, "weights_file": path.name if path is not None else None,
            "weight_files": list(spec.weight_files), "auto_for_photos": auto == value,
            "package": spec.package, "package_installed": missing[value] is None, "zero_shot": spec.zero_shot,
        })
    return rows


class EncoderListView(APIView):
    """The encoders a project can use."""

    @extend_schema(
        summary="Encoders and their weights",
        description=(
            "Every value of a project's `encoder` setting except `auto`, with whether the weights of "
            "each pretrained encoder are on this server (in WEIGHTS_DIR or torch hub's cache; nothing is "
            "downloaded at run time). A pretrained encoder without weights cannot embed a project's "
            "images: an owner adds them with `python manage.py weights add NAME FILE`. The timm and open_clip "
            "encoders also need their Python package on the server (`package_installed`); CLIP encoders "
            f"(`zero_shot`) guess from the class names before the first label. {AUTO}"
        ),
        tags=["encoders"],
        responses={200: EncoderSerializer(many=True), 401: NOT_SIGNED_IN},
    )
    def get(self, request):
        return Response(EncoderSerializer(encoders(), many=True).data)
