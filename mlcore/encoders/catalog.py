"""What the pretrained encoders are, as plain data: no torch, so a web process can list them
and look for their weight files. The family modules build their EncoderSpecs from it.

Weight files are the publishers' own file names (torchvision's are also torch hub's cache
names, `<arch>-<first 8+ hex digits of the file's sha256>.pth`); `url_base` + file name is
where `manage.py weights fetch` downloads them on a machine with internet. timm and
open_clip publish every model under the same file name on the Hugging Face hub
(`model.safetensors`, `open_clip_pytorch_model.bin`): their entries name the publisher's file
in `remote_file` and are kept under the model's full name (`<timm name>.safetensors`,
`open_clip_<arch>_<tag>.bin`) so that files of different models can sit in one folder.

The timm and open_clip families need their packages (`package`); without them the entries
stay listed (with `missing_package(name)` saying why they cannot be used) and the registry
leaves them out.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

TORCHVISION_URL = "https://download.pytorch.org/models/"
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/"
HF_URL = "https://huggingface.co/{repo}/resolve/main/"

# family -> the Python package it needs (None: torch and torchvision only)
PACKAGES = {"torchvision": None, "dinov2": None, "timm": "timm", "open_clip": "open_clip"}
# family -> the pip requirement that provides the package (for messages)
PIP_NAMES = {"timm": "timm", "open_clip": "open-clip-torch"}


@dataclass(frozen=True)
class Pretrained:
    name: str
    family: str  # "torchvision" | "dinov2" | "timm" | "open_clip"
    out_dim: int
    input_size: int
    weight_files: tuple  # preferred first
    url_base: str
    description: str
    arch: str = ""  # the library's own model name (timm: with its pretrained tag; open_clip: model config)
    remote_file: str = ""  # the publisher's file name when it is not weight_files[0]
    zero_shot: bool = False  # has a text tower: class names give guesses before the first label

    @property
    def package(self) -> str | None:
        return PACKAGES[self.family]

    def url(self, file_name: str) -> str:
        return self.url_base + (self.remote_file or file_name)


def _timm(name, arch, out_dim, description):
    """A timm model kept as `<timm name with tag>.safetensors` (or .pth), fetched from the
    model's hub repository (timm/<name with tag>, file model.safetensors)."""
    return Pretrained(f"timm/{name}", "timm", out_dim, 224, (f"{arch}.safetensors", f"{arch}.pth"),
                      HF_URL.format(repo=f"timm/{arch}"), description, arch=arch, remote_file="model.safetensors")


def _open_clip(arch, tag, repo, description):
    """An open_clip CLIP model kept as `open_clip_<arch>_<tag>.bin` (or .safetensors), fetched
    from the repository open_clip's own pretrained table names (open_clip_pytorch_model.bin)."""
    stem = f"open_clip_{arch}_{tag}"
    return Pretrained(f"open_clip/{arch}", "open_clip", 512, 224, (f"{stem}.bin", f"{stem}.safetensors"),
                      HF_URL.format(repo=repo), description, arch=arch, remote_file="open_clip_pytorch_model.bin",
                      zero_shot=True)


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
    # timm's default pretrained tag of each (timm 1.0.31); layouts other than torchvision's
    # (timm's resnet50 has torchvision's keys, so it would add nothing the list lacks)
    _timm("vit_small_patch16_224", "vit_small_patch16_224.augreg_in21k_ft_in1k", 384,
          "ViT-S/16, ImageNet-21k then 1k (timm, AugReg), class token"),
    _timm("convnext_tiny", "convnext_tiny.in12k_ft_in1k", 768,
          "ConvNeXt-Tiny, ImageNet-12k then 1k (timm), pooled and normalised"),
    _timm("efficientnet_b0", "efficientnet_b0.ra_in1k", 1280,
          "EfficientNet-B0, ImageNet-1k (timm, RandAugment), pooled; small and fast on CPU"),
    # CLIP with GELU (the OpenAI weights need QuickGELU, another architecture); image
    # embeddings in the joint space, so class names give zero-shot guesses
    _open_clip("ViT-B-32", "laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
               "CLIP ViT-B/32, LAION-2B (open_clip); zero-shot guesses from class names"),
    _open_clip("ViT-B-16", "laion2b_s34b_b88k", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K",
               "CLIP ViT-B/16, LAION-2B (open_clip); zero-shot guesses from class names"),
)}

# `auto` takes the first of these whose weights are present (and package installed):
# self-supervised features of DINOv2 transfer best to new domains with few labels; then
# CLIP, whose features are nearly as good for propagation and whose class names give
# guesses before the first label; then the ImageNet-21k/12k-pretrained timm models; then
# the ImageNet-1k classifiers, EfficientNet-B0 and ResNet-18 last (smallest features).
PREFERENCE = ("dinov2_vitb14", "dinov2_vits14", "open_clip/ViT-B-16", "open_clip/ViT-B-32", "timm/convnext_tiny",
              "timm/vit_small_patch16_224", "convnext_tiny", "resnet50", "vit_b_16", "timm/efficientnet_b0",
              "resnet18")


def missing_package(name: str) -> str | None:
    """Why encoder `name` cannot be used on this machine (its family's package is not
    installed: a sentence saying what to install), or None. Looks for the package without
    importing it."""
    c = PRETRAINED[name]
    if c.package is None or importlib.util.find_spec(c.package) is not None:
        return None
    return (f"The {name} encoder needs the {c.package} package, which is not installed on this server "
            f"(pip install {PIP_NAMES[c.family]}).")


def usable(name: str) -> bool:
    """Its family's package is installed (weights aside)."""
    return missing_package(name) is None


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
