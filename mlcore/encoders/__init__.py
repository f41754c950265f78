"""Encoder registry (mlcore.encoders.registry) and one module per family: selfsup,
torchvision_family, dinov2, and timm_family / open_clip_family where those packages are
installed. Importing this package does not import torch."""

_LAZY = {"REGISTRY", "EncoderSpec", "default_weight_dirs", "find_weights", "get", "names", "recognise"}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        from mlcore.encoders import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'mlcore.encoders' has no attribute {name!r}")
