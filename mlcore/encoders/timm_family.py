"""timm models (Wightman, pytorch-image-models) as feature extractors, weights from local
files only.

Built with ``timm.create_model(name, pretrained=False)`` (timm never downloads then) in the
layout of the hub's ``model.safetensors`` (classifier included, so stock files load
strictly); ``reset_classifier(0)`` turns the model into its pooled features. Input size and
normalisation are the model's own ``pretrained_cfg`` (ViT-S/16 AugReg: mean = std = 0.5).

Importing this module needs timm: the registry leaves the family out without it."""

from __future__ import annotations

import timm
from timm.models import get_pretrained_cfg
from torch import nn

from mlcore.encoders.catalog import PRETRAINED
from mlcore.encoders.spec import EncoderSpec

FAMILY = "timm"


def _arch(arch: str):
    def make(**kwargs) -> nn.Module:
        return timm.create_model(arch, pretrained=False, **kwargs)  # never downloads
    return make


def _features(m: nn.Module) -> nn.Module:
    m.reset_classifier(0)  # (B, 3, S, S) -> pooled features (B, num_features)
    return m


def spec(name: str, arch: str, out_dim: int, weight_files: tuple = (), description: str = "") -> EncoderSpec:
    """The spec of timm model `arch` (with its pretrained tag) registered as `name`; input
    size, mean/std and the classifier's key prefix from timm's pretrained_cfg of the tag
    (read without building the model)."""
    cfg = get_pretrained_cfg(arch)
    if cfg is None:
        raise ValueError(f"timm {timm.__version__} has no pretrained configuration {arch!r}")
    return EncoderSpec(name, FAMILY, out_dim=out_dim, arch=_arch(arch), input_size=cfg.input_size[-1],
                       mean=tuple(cfg.mean), std=tuple(cfg.std), weight_files=weight_files,
                       head=(cfg.classifier + ".",), features=_features, description=description)


SPECS = tuple(spec(name, c.arch, c.out_dim, c.weight_files, c.description)
              for name, c in PRETRAINED.items() if c.family == FAMILY)
