"""EncoderSpec: what the registry knows about one encoder, and strict local weight loading."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# wrappers around the tensors of a saved file: {"state_dict": sd}, {"model": sd}, a DINO
# training checkpoint {"teacher": sd}, an mlcore checkpoint {"state": {"encoder": sd}} or,
# exported from a project on a pretrained backbone, {"state": {"backbone": sd}}
CONTAINER_KEYS = ("state_dict", "model", "teacher", "state", "encoder", "backbone")
# key prefixes added by wrappers: DataParallel/DDP, torch.compile, training frameworks
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "backbone.", "model.")


@dataclass(frozen=True)
class EncoderSpec:
    """One registered encoder.

    ``arch(**kwargs)`` builds the randomly initialised network in the layout of its stock
    weight files (classifier head included); ``features(model)`` turns it into the feature
    extractor (B, channels, S, S) -> (B, out_dim) by dropping the head whose state-dict
    keys start with ``head``. Inputs are expected already normalised with ``mean``/``std``;
    ``mean is None`` (self-supervised encoders) means the model takes [0, 1] images and
    standardises them itself. ``None`` sizes/channels follow the pool's images. CLIP-like
    encoders keep their text tower (it is no head) and say how to embed texts with
    ``text_encoder``."""

    name: str
    family: str  # "selfsup" | "torchvision" | "dinov2" | "timm" | "open_clip"
    out_dim: int
    arch: Callable[..., nn.Module]
    input_size: int | None = 224
    channels: int | None = 3
    mean: tuple | None = IMAGENET_MEAN
    std: tuple | None = IMAGENET_STD
    weight_files: tuple = ()  # known file names, preferred first (torch hub cache names)
    head: tuple = ()  # state-dict key prefixes of the classifier head
    features: Callable[[nn.Module], nn.Module] = lambda m: m
    # CLIP-like encoders: built model -> (texts -> (T, out_dim) text embeddings, logit scale)
    text_encoder: Callable[[nn.Module], tuple] | None = None
    description: str = ""

    @property
    def pretrained(self) -> bool:
        return self.family != "selfsup"

    @property
    def zero_shot(self) -> bool:
        """Its image embeddings share a space with text: class names give guesses."""
        return self.text_encoder is not None

    def build(self, pretrained_path: str | Path | None = None, **kwargs) -> nn.Module:
        """The feature extractor, random or with the weights of a LOCAL file (never
        downloads). Loading is strict on every backbone tensor; head tensors in the file
        are ignored. Raises ValueError naming the file on any mismatch."""
        model = self.features(self.arch(**kwargs))
        if pretrained_path is not None:
            sd = drop_head(strip_prefixes(read_state_dict(pretrained_path)), self.head)
            try:
                model.load_state_dict(sd, strict=True)
            except RuntimeError as e:
                raise ValueError(f"{Path(pretrained_path).name}: not {self.name} weights: "
                                 f"{describe_mismatch(model.state_dict(), sd)}") from e
        return model.eval()


def is_safetensors(path: str | Path) -> bool:
    """A safetensors file (by its content, not its name: downloads are written to *.part
    files): 8 bytes of little-endian header length, then the JSON header."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(10)
    except OSError:
        return False
    return len(head) == 10 and head[8:10] in (b'{"', b"{}") and int.from_bytes(head[:8], "little") < 100_000_000


def read_state_dict(path: str | Path) -> dict:
    """A local file's {key: tensor}: a safetensors file (timm's and Hugging Face's format), or
    torch.load(weights_only=True) of a PyTorch file unwrapped from its container."""
    path = Path(path)
    if is_safetensors(path):
        return _read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torn zip, pickle, EOF...: one clear message
        raise ValueError(f"{path.name}: not a readable PyTorch weight file ({type(e).__name__}: {e})") from e
    sd = unwrap(obj)
    if sd is None:
        raise ValueError(f"{path.name}: no state dict of tensors inside (top-level {type(obj).__name__})")
    return sd


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ValueError(f"{path.name}: a safetensors file, and the safetensors package is not installed "
                         "(pip install safetensors)") from None
    try:
        sd = load_file(str(path), device="cpu")
    except Exception as e:  # a torn or forged header: one clear message
        raise ValueError(f"{path.name}: not a readable safetensors file ({type(e).__name__}: {e})") from e
    if not sd:
        raise ValueError(f"{path.name}: no tensors inside")
    return sd


def unwrap(obj) -> dict | None:
    """The {key: tensor} dict inside common checkpoint containers, or None."""
    for _ in range(4):
        if not isinstance(obj, dict) or not obj:
            return None
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:  # mixed dict: keep its tensors (e.g. extra metadata entries)
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            return tensors or None
        obj = inner
    return None


def strip_prefixes(sd: dict) -> dict:
    """Drop wrapper prefixes shared by every key; a training checkpoint with "backbone."
    next to its heads (DINO: dino_head.*, ibot_head.*) keeps the backbone part only."""
    changed = True
    while changed and sd:
        changed = False
        for p in WRAPPER_PREFIXES:
            keys = [k for k in sd if k.startswith(p)]
            if keys and (len(keys) == len(sd) or p == "backbone."):
                sd = {k[len(p):]: sd[k] for k in keys}
                changed = True
    return sd


def drop_head(sd: dict, head: tuple) -> dict:
    return {k: v for k, v in sd.items() if not (head and k.startswith(head))}


def describe_mismatch(expected: dict, got: dict, show: int = 3) -> str:
    """Human summary of the first missing / unexpected / wrongly shaped keys."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} {tuple(got[k].shape)} != {tuple(expected[k].shape)}"
              for k in expected if k in got and tuple(got[k].shape) != tuple(expected[k].shape)]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - show} more)" if len(items) > show else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:show])}{more}")
    return "; ".join(parts) or "load_state_dict failed"
