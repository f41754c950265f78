"""Backbones mapping images (B, C, H, W) in [0, 1] to features (B, D).

The self-supervised encoders live in mlcore.encoders.selfsup (one module per family,
see mlcore.encoders.registry); this module keeps the names that configs, checkpoints
and callers use: ``build_encoder(cfg)`` with ``cfg.arch`` in ``ENCODERS``."""

from __future__ import annotations

from mlcore.encoders.selfsup import ENCODERS, Normalize, ResNet18Small, SmallCNN, build_encoder

__all__ = ["ENCODERS", "Normalize", "ResNet18Small", "SmallCNN", "build_encoder"]
