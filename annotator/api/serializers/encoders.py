"""The response body of /api/encoders/: what can embed a project's images on this server."""
from rest_framework import serializers


class EncoderSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The value of a project's `encoder` setting.")
    title = serializers.CharField(help_text="The name the settings page shows.")
    family = serializers.ChoiceField(
        choices=["selfsup", "torchvision", "dinov2", "timm", "open_clip"],
        help_text="selfsup: pretrained on the project's own images; torchvision: an ImageNet classifier; "
        "dinov2: DINOv2 (self-supervised on LVD-142M); timm: a pytorch-image-models model; open_clip: a CLIP "
        "model (image and text towers).",
    )
    description = serializers.CharField()
    input_size = serializers.IntegerField(
        allow_null=True, help_text="The side in pixels images are resized to; null: follows the project's images."
    )
    out_dim = serializers.IntegerField(
        allow_null=True, help_text="Length of an image's embedding; null: set by the trainer's configuration."
    )
    weights_present = serializers.BooleanField(
        help_text="Its weights are on this server (always true for self-supervised, which needs none)."
    )
    weights_file = serializers.CharField(
        allow_null=True, help_text="The weight file found (its name only), or null."
    )
    weight_files = serializers.ListField(
        child=serializers.CharField(),
        help_text="The file names looked for, preferred first. Add one with "
        "`python manage.py weights add NAME FILE` (or `weights fetch NAME` with internet).",
    )
    auto_for_photos = serializers.BooleanField(
        help_text="The encoder `auto` takes for colour photos now (exactly one entry is true)."
    )
    package = serializers.CharField(
        allow_null=True, help_text="The Python package the encoder needs beyond torch (timm, open_clip), or null."
    )
    package_installed = serializers.BooleanField(
        help_text="That package is installed on this server (always true when none is needed); an encoder "
        "without it cannot be chosen."
    )
    zero_shot = serializers.BooleanField(
        help_text="A CLIP model: the class names give guesses before the first label, faded out as labels "
        "arrive (ZERO_SHOT_FADE_LABELS)."
    )
