"""Device choice and seeding: the one place that decides CPU or CUDA."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def get_device(name: str | torch.device | None = None) -> torch.device:
    """``TORCH_DEVICE`` (or ``name``) overrides; otherwise CUDA when available."""
    if isinstance(name, torch.device):
        name = str(name)
    source = "device" if name else "TORCH_DEVICE"
    name = (name or os.environ.get("TORCH_DEVICE") or "").strip()
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name.lower())
    except RuntimeError as e:
        raise ValueError(f"{source}={name!r} is not a valid torch device "
                         f"(use e.g. 'cpu', 'cuda' or 'cuda:0')") from e
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            raise ValueError(f"{source}={name!r} but CUDA has {count} usable device(s); "
                             f"set TORCH_DEVICE=cpu or leave it unset")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def generator(seed: int, device: torch.device) -> torch.Generator:
    """A seeded generator on ``device`` so augmentation draws are reproducible."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def set_cpu_threads(n: int | None = None) -> None:
    """Use all cores by default; ``MLCORE_THREADS`` caps it on shared machines."""
    n = n or int(os.environ.get("MLCORE_THREADS", "0")) or os.cpu_count() or 1
    torch.set_num_threads(n)
