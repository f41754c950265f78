"""torchvision ImageNet classifiers as feature extractors, weights from local files only.

Known file names are torchvision's own (the basename of each ``Weights.url``, which is
also the torch hub cache name, ``<arch>-<first 8+ hex digits of the file's sha256>.pth``)."""

from __future__ import annotations

from torch import nn

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


SPECS = (
    EncoderSpec("resnet18", "torchvision", out_dim=512, arch=_tv("resnet18"), features=_resnet_features,
                head=("fc.",), weight_files=("resnet18-f37072fd.pth",),  # IMAGENET1K_V1
                description="ResNet-18, ImageNet-1k (torchvision)"),
    EncoderSpec("resnet50", "torchvision", out_dim=2048, arch=_tv("resnet50"), features=_resnet_features,
                head=("fc.",),
                # IMAGENET1K_V2 (torchvision's DEFAULT, 80.9% top-1), then IMAGENET1K_V1 (76.1%)
                weight_files=("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth"),
                description="ResNet-50, ImageNet-1k (torchvision)"),
    EncoderSpec("convnext_tiny", "torchvision", out_dim=768, arch=_tv("convnext_tiny"),
                features=_convnext_features, head=("classifier.2.",),
                weight_files=("convnext_tiny-983f1562.pth",),  # IMAGENET1K_V1
                description="ConvNeXt-Tiny, ImageNet-1k (torchvision)"),
    EncoderSpec("vit_b_16", "torchvision", out_dim=768, arch=_tv("vit_b_16"), features=_vit_features,
                head=("heads.",), weight_files=("vit_b_16-c867db91.pth",),  # IMAGENET1K_V1, 224 px only
                description="ViT-B/16, ImageNet-1k (torchvision); fixed 224 px input"),
)
