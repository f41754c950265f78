"""Self-contained checkpoints: a learner checkpoint of a project on a pretrained backbone,
with the backbone's weights inside.

A project on a frozen backbone saves only its graph and probabilities (the vectors live in
an embedding store, the weights in ``WEIGHTS_DIR``). Its export must load on a machine
without that weights file, so the export adds the backbone's stock state dict (head
dropped) under ``state["backbone"]`` and its name under ``meta["backbone"]``:

    bundle("v3/learner.pt", "resnet18-f37072fd.pth", "resnet18", "v3/export.pt")
    bundled_backbone(load_checkpoint("v3/export.pt"))  # -> "resnet18"
    registry.get("resnet18").build("v3/export.pt")      # the same features as the weights file

``EncoderSpec.build`` reads it like any wrapped state dict (``state`` -> ``backbone``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mlcore.checkpoint import FORMAT, atomic_write
from mlcore.encoders import registry
from mlcore.encoders.spec import drop_head, read_state_dict, strip_prefixes

BACKBONE_KEY = "backbone"


def bundle(checkpoint: str | Path, weights: str | Path, name: str, out: str | Path) -> Path:
    """Write ``out``: the checkpoint with the ``name`` backbone's weights from the local file
    ``weights`` (checked strictly first). Atomic; returns ``out``."""
    spec = registry.get(name)
    sd = drop_head(strip_prefixes(read_state_dict(weights)), spec.head)
    spec.build(weights)  # strict: a file of another architecture is refused, naming it
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not (isinstance(payload, dict) and payload.get("format") == FORMAT):
        raise ValueError(f"{Path(checkpoint).name}: not a checkpoint of this app")
    payload["state"] = {**payload.get("state", {}), BACKBONE_KEY: {k: v.contiguous() for k, v in sd.items()}}
    payload["meta"] = {**payload.get("meta", {}), BACKBONE_KEY: name}
    atomic_write(str(out), lambda fh: torch.save(payload, fh))
    return Path(out)


def bundled_backbone(ck: dict) -> str | None:
    """The registered backbone a loaded checkpoint (``load_checkpoint``'s dict) carries the
    weights of, or None."""
    if ck.get("config") is None or BACKBONE_KEY not in ck.get("state", {}):
        return None
    name = ck.get("meta", {}).get(BACKBONE_KEY)
    return name if name in registry.REGISTRY and registry.get(name).pretrained else None
