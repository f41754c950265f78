"""Photo preprocessing and streaming for pretrained encoders.

``prepare`` is the standard evaluation transform of ImageNet-pretrained backbones
(torchvision's ``Resize(round(S / 0.875)) + CenterCrop(S)``, e.g. 256 -> 224): EXIF
orientation applied, any mode made RGB (alpha composited on white), the SHORTER side
resized to ``round(size / crop_ratio)`` keeping the aspect ratio (bicubic, antialiased),
the centre ``size x size`` cropped, scaled to [0, 1] and normalised. Nothing is squashed.

``stream_batches`` reads files lazily through a DataLoader, so a pool of any size is never
in memory at once; ``iter_embed_files`` / ``embed_files`` run a model over them and
return L2-normalised rows. A file that cannot be read gives a zero image flagged
``ok=False`` (and a zero row) instead of stopping the run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_RATIO = 0.875  # 224 / 256
# Opens a path (or any name) for reading: must be picklable (a module-level function) so
# DataLoader workers can use it.
Opener = Callable[[str], BinaryIO]

_HIGH_BIT = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA = {"RGBA", "LA", "PA", "RGBa", "La"}


def resize_side(size: int, crop_ratio: float = CROP_RATIO) -> int:
    """The shorter side before the centre crop: round(size / crop_ratio) (256 for 224)."""
    if not 0 < crop_ratio <= 1:
        raise ValueError(f"crop_ratio must be in (0, 1], got {crop_ratio}")
    return max(int(size), round(size / crop_ratio))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB: grayscale/palette/CMYK converted, transparency composited on
    white, 16-bit and float grayscale scaled to 8 bits."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _HIGH_BIT:
        a = np.asarray(image, dtype=np.float32)  # (H, W)
        if a.max(initial=0.0) > 255:
            a = a * (255.0 / 65535.0)
        image = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
        return image.convert("RGB")
    if mode == "P" and "transparency" in image.info:
        mode = "PA"
    if mode in _ALPHA:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _mean_std(mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)  # (3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)  # (3, 1, 1)
    if m.shape[0] != 3 or s.shape[0] != 3:
        raise ValueError("mean and std must have 3 values (R, G, B)")
    return m, s


def prepare(image: Image.Image, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD,
            crop_ratio: float = CROP_RATIO) -> torch.Tensor:
    """PIL image -> float32 (3, size, size), normalised with mean/std (see the module doc)."""
    short = resize_side(size, crop_ratio)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the photo: use it unrotated
        pass
    image = to_rgb(image)
    w, h = image.size
    # as torchvision's Resize(int): the shorter side becomes `short`, the longer one truncated
    nw, nh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)  # antialiased when shrinking
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.array(image, dtype=np.uint8))  # (S, S, 3) uint8
    x = x.permute(2, 0, 1).float().div_(255.0)  # (3, S, S) in [0, 1]
    m, s = _mean_std(mean, std)
    return x.sub_(m).div_(s)


def load_image(path, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_ratio: float = CROP_RATIO,
               draft: bool = True, opener: Opener | None = None) -> torch.Tensor:
    """Read one file and ``prepare`` it -> float32 (3, size, size). Raises on a bad file.

    ``draft``: JPEGs are decoded at the smallest 1/2, 1/4 or 1/8 DCT scale that still
    leaves the shorter side >= the resize target (several times faster on camera photos;
    the bicubic resize then does the rest). ``opener(path)``, when given, returns the
    open binary file to read instead of ``path`` on disk (an object in a bucket, say)."""
    short = resize_side(size, crop_ratio)
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(opener(path)) if opener is not None else path
        image = stack.enter_context(Image.open(source))
        if draft and image.format == "JPEG":
            image.draft(None, (short, short))
        image.load()
        return prepare(image, size, mean, std, crop_ratio)


def default_workers() -> int:
    """DataLoader workers: min(4, cpus - 1), 0 (load in the caller) with a single CPU."""
    cpus = os.cpu_count() or 1
    return 0 if cpus <= 1 else min(4, cpus - 1)


class ImageFileDataset(Dataset):
    """Files read lazily: ``ds[i] -> (float32 (3, S, S), i, ok)``; ``ok`` is False (and the
    image zeros) when the file is missing, truncated or not an image.

    The paths are kept as one bytes buffer + offsets, not a list of str: forked workers
    then share them instead of copying a million refcounted objects page by page."""

    def __init__(self, paths: Sequence, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 crop_ratio: float = CROP_RATIO, draft: bool = True, opener: Opener | None = None):
        self.opener = opener
        encoded = [os.fsencode(p) for p in paths]
        self._offsets = np.zeros(len(encoded) + 1, np.int64)  # (N + 1,)
        np.cumsum([len(b) for b in encoded], out=self._offsets[1:])
        self._blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)  # all paths, concatenated
        self.size, self.crop_ratio, self.draft = int(size), crop_ratio, draft
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        resize_side(self.size, crop_ratio)  # validate now, not in a worker

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def path(self, index: int) -> str:
        return os.fsdecode(self._blob[self._offsets[index]:self._offsets[index + 1]].tobytes())

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, bool]:
        try:
            x = load_image(self.path(index), self.size, self.mean, self.std, self.crop_ratio, self.draft,
                           self.opener)
            return x, index, True
        except Exception:  # noqa: BLE001 - hostile or broken files make PIL raise almost anything
            return torch.zeros(3, self.size, self.size), index, False


def stream_batches(paths: Sequence, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, batch_size: int = 64,
                   workers: int | None = None, device="cpu", crop_ratio: float = CROP_RATIO,
                   draft: bool = True, opener: Opener | None = None
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (x float32 (B, 3, S, S), indices int64 (B,), ok bool (B,)) in path order.

    ``workers`` defaults to ``default_workers()``; memory is O(batch_size * workers)
    images, whatever the number of paths. Pinned memory only when ``device`` is CUDA."""
    dataset = ImageFileDataset(paths, size, mean, std, crop_ratio, draft, opener)
    if len(dataset) == 0:
        return
    workers = default_workers() if workers is None else max(0, int(workers))
    pin = torch.device(device).type == "cuda" and torch.cuda.is_available()
    loader = DataLoader(dataset, batch_size=int(batch_size), shuffle=False, num_workers=workers,
                        pin_memory=pin, persistent_workers=False, drop_last=False)
    yield from loader


def iter_embed_files(model: torch.nn.Module, paths: Sequence, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     batch_size: int = 64, workers: int | None = None, device="cpu",
                     progress: Callable[[float], None] | None = None, crop_ratio: float = CROP_RATIO,
                     draft: bool = True, opener: Opener | None = None
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (indices int64 (B,), vectors float32 (B, D), ok bool (B,)) batch by batch, in
    path order, so the caller can write each batch to a store as it goes. Rows are
    L2-normalised model outputs (flattened to (B, D)); rows of unreadable files (ok False)
    are zeros and should not be stored. ``progress(fraction done)`` after every batch.
    The model is moved to ``device`` and run in eval mode; its train/eval mode is restored
    when the iteration ends."""
    dev = torch.device(device)
    total = len(paths)
    was_training = model.training
    model.eval()
    model.to(dev)
    done = 0
    try:
        for x, idx, ok in stream_batches(paths, size, mean, std, batch_size, workers, dev, crop_ratio, draft,
                                         opener):
            # x: (B, 3, S, S), idx: (B,) int64, ok: (B,) bool
            with torch.no_grad():  # not around the yield: the caller's code keeps its grad mode
                out = model(x.to(dev, non_blocking=True))  # (B, D) or (B, ...)
                out = F.normalize(out.reshape(out.shape[0], -1).float(), dim=1)  # (B, D) unit rows
            vectors = out.cpu().numpy()
            okn = ok.numpy().astype(bool)
            vectors[~okn] = 0.0
            done += len(idx)
            yield idx.numpy().astype(np.int64), vectors, okn
            if progress is not None:
                progress(done / total)
    finally:
        model.train(was_training)


def embed_files(model: torch.nn.Module, paths: Sequence, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                batch_size: int = 64, workers: int | None = None, device="cpu",
                progress: Callable[[float], None] | None = None, crop_ratio: float = CROP_RATIO,
                draft: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """-> (vectors float32 (N, D) L2-normalised rows in path order, failed int64 (F,)): the
    indices of unreadable files, whose rows are zeros. (0, 0) vectors for no paths.
    Holds all N rows: for a large pool write ``iter_embed_files`` batches to a store."""
    vectors, failed = None, []
    for idx, vec, ok in iter_embed_files(model, paths, size, mean, std, batch_size, workers, device, progress,
                                         crop_ratio, draft):
        if vectors is None:
            vectors = np.zeros((len(paths), vec.shape[1]), np.float32)  # (N, D)
        vectors[idx] = vec
        failed.append(idx[~ok])
    if vectors is None:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return vectors, np.concatenate(failed).astype(np.int64)
