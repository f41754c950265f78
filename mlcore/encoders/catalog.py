"""What the pretrained encoders are, as plain data: no torch, so a web process can list them
and look for their weight files. The family modules build their EncoderSpecs from it.

Weight files are the publishers' own file names (torchvision's are also torch hub's cache
names, `<arch>-<first 8+ hex digits of the file's sha256>.pth`); `url_base` + file name is
where `manage.py weights fetch` downloads them on a machine with internet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TORCHVISION_URL = "https://download.pytorch.org/models/"
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/"


@dataclass(frozen=True)
class Pretrained:
    name: str
    family: str  # "torchvision" | "dinov2"
    out_dim: int
    input_size: int
    weight_files: tuple  # preferred first
    url_base: str
    description: str

    def url(self, file_name: str) -> str:
        return self.url_base + file_name


PRETRAINED = {p.name: p for p in (
    Pretrained("resnet18", "torchvision", 512, 224, ("resnet18-f37072fd.pth",),  # IMAGENET1K_V1
               TORCHVISION_URL, "ResNet-18, ImageNet-1k (torchvision)"),
    # IMAGENET1K_V2 (torchvision's DEFAULT, 80.9% top-1), then IMAGENET1K_V1 (76.1%)
    Pretrained("resnet50", "torchvision", 2048, 224, ("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth"),
               TORCHVISION_URL, "ResNet-50, ImageNet-1k (torchvision)"),
    Pretrained("convnext_tiny", "torchvision", 768, 224, ("convnext_tiny-983f1562.pth",),  # IMAGENET1K_V1
               TORCHVISION_URL, "ConvNeXt-Tiny, ImageNet-1k (torchvision)"),
    Pretrained("vit_b_16", "torchvision", 768, 224, ("vit_b_16-c867db91.pth",),  # IMAGENET1K_V1, 224 px only
               TORCHVISION_URL, "ViT-B/16, ImageNet-1k (torchvision); fixed 224 px input"),
    Pretrained("dinov2_vits14", "dinov2", 384, 224, ("dinov2_vits14_pretrain.pth",),
               DINOV2_URL + "dinov2_vits14/", "DINOv2 ViT-S/14 (LVD-142M, self-supervised), class token"),
    Pretrained("dinov2_vitb14", "dinov2", 768, 224, ("dinov2_vitb14_pretrain.pth",),
               DINOV2_URL + "dinov2_vitb14/", "DINOv2 ViT-B/14 (LVD-142M, self-supervised), class token"),
)}

# `auto` takes the first of these whose weights are present: self-supervised features of
# DINOv2 transfer best to new domains with few labels, then the ImageNet classifiers.
PREFERENCE = ("dinov2_vitb14", "dinov2_vits14", "convnext_tiny", "resnet50", "vit_b_16", "resnet18")


def hub_checkpoints_dir() -> Path:
    """torch hub's cache of downloaded weights, found the way torch.hub does (TORCH_HOME,
    else XDG_CACHE_HOME/torch, else ~/.cache/torch) without importing torch."""
    import os

    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    return Path(home) / "hub" / "checkpoints"


def weight_dirs(weights_dir) -> list[Path]:
    """[weights_dir, torch hub's checkpoints folder]: where weight files are looked for."""
    return ([Path(weights_dir)] if weights_dir else []) + [hub_checkpoints_dir()]


def find_weights(name: str, dirs) -> Path | None:
    """The first known file of `name` present in `dirs` (dirs in order, then the files'
    preference), or None. Looks only; never downloads."""
    files = PRETRAINED[name].weight_files
    for d in dirs:
        for f in files:
            p = Path(d) / f
            if p.is_file():
                return p
    return None
