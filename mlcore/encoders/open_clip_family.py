"""open_clip CLIP models (Ilharco et al.; Cherti et al. 2023): the image tower embeds, the
text tower gives class prototypes for zero-shot guesses (`mlcore.zeroshot`).

Built with ``open_clip.create_model(name, pretrained=None)`` (never downloads) in the
layout open_clip saves (``visual.*``, ``transformer.*``, ``token_embedding.weight``,
``positional_embedding``, ``ln_final.*``, ``text_projection``, ``logit_scale``); the whole
model loads strictly. Its forward is ``encode_image``: (B, 3, 224, 224) normalised with
CLIP's mean/std -> (B, embed_dim) in the joint image-text space. The tokenizer is
open_clip's own (its BPE vocabulary ships in the package).

Importing this module needs open_clip: the registry leaves the family out without it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn

from mlcore.encoders.catalog import PRETRAINED
from mlcore.encoders.spec import EncoderSpec

FAMILY = "open_clip"


class _NoRandomInitWarning(logging.Filter):
    """open_clip warns on the root logger that a model without `pretrained` is random: ours
    get their weights from a local file right after."""

    def filter(self, record):
        return "No pretrained weights loaded" not in record.getMessage()


def create(arch: str, **kwargs) -> nn.Module:
    """open_clip's model `arch` (a built-in or registered model config), randomly initialised,
    on torch's default device (the meta device for layouts)."""
    quiet = _NoRandomInitWarning()
    logging.getLogger().addFilter(quiet)
    try:
        return open_clip.create_model(arch, pretrained=None, device=torch.get_default_device(), **kwargs)
    finally:
        logging.getLogger().removeFilter(quiet)


def _arch(arch: str):
    def make(**kwargs) -> nn.Module:
        return create(arch, **kwargs)
    return make


def image_features(m: nn.Module) -> nn.Module:
    """The CLIP model, called as its image tower (text tower kept for `text_encoder`)."""
    m.forward = m.encode_image  # (B, 3, S, S) -> (B, embed_dim), not normalised
    return m


def text_encoder(arch: str):
    def make(model: nn.Module) -> tuple[Callable[[list[str]], torch.Tensor], float]:
        """(texts -> (T, embed_dim) text embeddings, the model's logit scale exp(t))."""
        tokenizer = open_clip.get_tokenizer(arch)
        device = next(model.parameters()).device

        def encode(texts: list[str]) -> torch.Tensor:
            with torch.no_grad():
                return model.encode_text(tokenizer(texts).to(device))
        return encode, float(model.logit_scale.detach().exp().item())
    return make


def spec(name: str, arch: str, out_dim: int, input_size: int = 224, weight_files: tuple = (),
         description: str = "") -> EncoderSpec:
    return EncoderSpec(name, FAMILY, out_dim=out_dim, arch=_arch(arch), input_size=input_size,
                       mean=tuple(OPENAI_DATASET_MEAN), std=tuple(OPENAI_DATASET_STD), weight_files=weight_files,
                       features=image_features, text_encoder=text_encoder(arch), description=description)


SPECS = tuple(spec(name, c.arch, c.out_dim, c.input_size, c.weight_files, c.description)
              for name, c in PRETRAINED.items() if c.family == FAMILY)
