"""torchvision ImageNet classifiers as feature extractors, weights from local files only.

Known file names are torchvision's own (the basename of each ``Weights.url``, which is
also the torch hub cache name, ``<arch>-<first 8+ hex digits of the file's sha256>.pth``)."""

from __future__ import annotations

from torch import nn

from mlcore.encoders.catalog import PRETRAINED
from mlcore.encoders.spec import EncoderSpec


def _tv(name: str):
    def make(**kwargs) -> nn.Module:
        import torchvision.models as tvm

        return getattr(tvm, name)(weights=None, **kwargs)  # never downloads
    return make


def _resnet_features(m: nn.Module) -> nn.Module:
    m.fc = nn.Identity()  # avgpool -> flatten -> (B, 512 | 2048)
    return m


def _convnext_features(m: nn.Module) -> nn.Module:
    # classifier = [LayerNorm2d(768), Flatten(1), Linear(768, 1000)]: keep the norm
    m.classifier[2] = nn.Identity()  # (B, 768, 1, 1) -> norm -> (B, 768)
    return m


def _vit_features(m: nn.Module) -> nn.Module:
    m.heads = nn.Identity()  # encoder.ln(tokens)[:, 0]: the class token (B, 768)
    return m


def _spec(name, features, head):
    c = PRETRAINED[name]
    return EncoderSpec(name, c.family, out_dim=c.out_dim, arch=_tv(name), features=features, head=head,
                       input_size=c.input_size, weight_files=c.weight_files, description=c.description)


SPECS = (
    _spec("resnet18", _resnet_features, ("fc.",)),
    _spec("resnet50", _resnet_features, ("fc.",)),
    _spec("convnext_tiny", _convnext_features, ("classifier.2.",)),
    _spec("vit_b_16", _vit_features, ("heads.",)),
)
