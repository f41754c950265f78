"""Encoder registry: name -> EncoderSpec, one module per family; weights from local files only.

    spec = get("resnet50")
    path = find_weights("resnet50", default_weight_dirs(WEIGHTS_DIR))
    model = spec.build(path)  # (B, 3, 224, 224) normalised with spec.mean/std -> (B, 2048)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

import torch

from mlcore.encoders import catalog, dinov2, selfsup, torchvision_family
from mlcore.encoders.spec import EncoderSpec, read_state_dict, strip_prefixes, unwrap

__all__ = ["MISSING", "REGISTRY", "EncoderSpec", "default_weight_dirs", "find_weights", "get", "names",
           "recognise", "sha256_prefix", "verify_sha256"]

# families whose module needs a package that may not be installed: family -> module
OPTIONAL = {"timm": "mlcore.encoders.timm_family", "open_clip": "mlcore.encoders.open_clip_family"}


def load_families() -> tuple[dict[str, EncoderSpec], dict[str, str]]:
    """({name: spec} of every family that imports, {family: why it is left out}). A family
    whose package (or one of the package's dependencies) is not installed is left out; any
    other import error is a bug and raises."""
    modules, missing = [selfsup, torchvision_family, dinov2], {}
    for family, module in OPTIONAL.items():
        try:
            modules.append(importlib.import_module(module))
        except ModuleNotFoundError as exc:
            if not exc.name or exc.name.split(".")[0] == "mlcore":
                raise
            missing[family] = (f"the {exc.name} package is not installed "
                               f"(pip install {catalog.PIP_NAMES[family]})")
    return {s.name: s for m in modules for s in m.SPECS}, missing


REGISTRY, MISSING = load_families()


def get(name: str) -> EncoderSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        family = catalog.PRETRAINED[name].family if name in catalog.PRETRAINED else None
        if family in MISSING:
            raise KeyError(f"the {name} encoder cannot be used here: {MISSING[family]}") from None
        raise KeyError(f"unknown encoder {name!r}; registered: {', '.join(names())}") from None


def names(family: str | None = None) -> list[str]:
    return [n for n, s in REGISTRY.items() if family is None or s.family == family]


def default_weight_dirs(weights_dir: str | Path | None) -> list[Path]:
    """[weights_dir, torch hub's checkpoints folder]: where local weight files are looked for."""
    return catalog.weight_dirs(weights_dir)


def find_weights(name: str, dirs: Iterable[str | Path]) -> Path | None:
    """The first of the encoder's known weight files present in ``dirs``, or None (always
    None for self-supervised encoders). Looks only; never downloads."""
    get(name)  # a clear KeyError for unknown names
    return catalog.find_weights(name, dirs) if name in catalog.PRETRAINED else None


def sha256_prefix(filename: str) -> str | None:
    """The hash in a torch hub file name (``resnet18-f37072fd.pth`` -> ``f37072fd``): the
    first 8+ hex digits of the file's sha256, torch.hub's check_hash convention."""
    stem = Path(filename).name.split(".")[0]
    if "-" not in stem:
        return None
    tail = stem.rsplit("-", 1)[1]
    return tail if len(tail) >= 8 and all(c in "0123456789abcdef" for c in tail) else None


def verify_sha256(path: str | Path) -> bool | None:
    """Whether the file's sha256 starts with the prefix in its name; None without one."""
    import hashlib

    prefix = sha256_prefix(str(path))
    if prefix is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest().startswith(prefix)


_SHAPES: dict[str, dict[str, tuple]] = {}


def stock_shapes(name: str) -> dict[str, tuple]:
    """{key: shape} of the spec's stock layout (head included), built on the meta device:
    no memory, no init cost. Cached."""
    if name not in _SHAPES:
        with torch.device("meta"):
            model = get(name).arch()
        _SHAPES[name] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return _SHAPES[name]


PRETRAINED_FAMILIES = ("torchvision", "dinov2", "timm", "open_clip")


def recognise(state_dict, families: tuple = PRETRAINED_FAMILIES, min_fraction: float = 0.5
              ) -> tuple[str, int, int] | None:
    """Which registered architecture a stock state dict (or a file path) belongs to.

    Unwraps containers, strips wrapper prefixes ("module.", "backbone.", "model."), then
    counts for each candidate the tensors whose key AND shape match its stock layout.
    -> (best name, matched, total tensors in the dict), or None when the best candidate
    explains less than ``min_fraction`` of the dict or of its own layout. Self-supervised
    encoders are left out by default: their layout depends on the pool's config; so are
    families whose package is not installed (not registered)."""
    sd = read_state_dict(state_dict) if isinstance(state_dict, (str, Path)) else unwrap(state_dict)
    if not sd:
        return None
    sd = strip_prefixes(sd)
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    best = None
    for name in names():
        if REGISTRY[name].family not in families:
            continue
        ref = stock_shapes(name)
        matched = sum(1 for k, s in shapes.items() if ref.get(k) == s)
        # more matches wins; on a tie the candidate with fewer unmatched own keys
        score = (matched, -(len(ref) - matched))
        if matched and (best is None or score > best[0]):
            best = (score, name, len(ref))
    if best is None:
        return None
    (matched, _), name, n_ref = best
    if matched < min_fraction * len(shapes) or matched < min_fraction * n_ref:
        return None
    return name, matched, len(shapes)
