"""Atomic checkpoints: dataclass config + state dicts + arrays, one file.

Written to a temporary file in the same directory, fsync'ed, then ``os.replace``d over
the old one (atomic on POSIX), so a kill at any moment leaves either the old or the
new checkpoint, never a torn one. Loaded with ``torch.load(weights_only=True)``: the
payload holds only tensors, primitives and containers, never pickled objects.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch

from mlcore.config import from_dict, to_dict

FORMAT = 1


def _to_tensors(arrays: dict) -> dict:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in (arrays or {}).items()}


def save_checkpoint(path: str, config, state: dict | None = None, arrays: dict | None = None,
                    meta: dict | None = None) -> None:
    """config: a dataclass from mlcore.config; state: {name: state_dict}; arrays:
    {name: np.ndarray}; meta: primitives only."""
    payload = {
        "format": FORMAT,
        "config": to_dict(config),
        "state": {k: {n: t.detach().cpu() for n, t in sd.items()} for k, sd in (state or {}).items()},
        "arrays": _to_tensors(arrays),
        "meta": meta or {},
    }
    atomic_write(path, lambda fh: torch.save(payload, fh))


def atomic_write(path: str, write) -> None:
    """Call ``write(binary file)`` on a temporary file next to ``path``, fsync it and
    rename it over ``path``, then fsync the folder: readers see the old or the new file,
    never part of one, whenever the process dies."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    # make the rename itself durable
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_checkpoint(path: str, map_location="cpu") -> dict:
    """-> {"config": dataclass, "state": {name: state_dict}, "arrays": {name: np.ndarray},
    "meta": dict}. Plain state dicts (a user's own checkpoint, a stock backbone's; a
    safetensors file too) come back as {"config": None, "state": {"model": sd}, ...}."""
    from mlcore.encoders.spec import is_safetensors, read_state_dict

    if is_safetensors(path):
        return {"config": None, "state": {"model": read_state_dict(path)}, "arrays": {}, "meta": {}}
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not (isinstance(payload, dict) and payload.get("format") == FORMAT):
        sd = payload.get("state_dict", payload) if isinstance(payload, dict) else payload
        return {"config": None, "state": {"model": sd}, "arrays": {}, "meta": {}}
    return {
        "config": from_dict(payload["config"]),
        "state": payload["state"],
        "arrays": {k: v.numpy() for k, v in payload["arrays"].items()},
        "meta": payload["meta"],
    }
