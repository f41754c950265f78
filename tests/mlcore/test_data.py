import gzip
import struct

import numpy as np
import torch

from mlcore.data import as_uint8_images, load_dataset, load_folder, load_npz, to_tensor


def write_idx(path, arr):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def test_mnist_idx_loader(tmp_path):
    rng = np.random.default_rng(0)
    xs = {"train": rng.integers(0, 256, (5, 28, 28)), "t10k": rng.integers(0, 256, (3, 28, 28))}
    ys = {"train": rng.integers(0, 10, 5), "t10k": rng.integers(0, 10, 3)}
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", xs[split])
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", ys[split])
    xtr, ytr, xte, yte = load_dataset(f"mnist:{tmp_path}")
    assert xtr.dtype == np.uint8 and xtr.shape == (5, 28, 28)
    assert np.array_equal(xtr, xs["train"]) and np.array_equal(yte, ys["t10k"])


def test_npz_loader_accepts_flat_float(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    np.savez(p, x_train=rng.random((4, 64)), y_train=np.arange(4),
             x_test=rng.random((2, 64)), y_test=np.arange(2))
    xtr, ytr, xte, yte = load_npz(str(p))
    assert xtr.shape == (4, 8, 8) and xtr.dtype == np.uint8 and ytr.dtype == np.int64


def test_folder_loader(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    xtr, ytr, xte, yte, classes = load_folder(str(tmp_path), size=16, test_fraction=0.2)
    assert classes == ["cat", "dog"]
    assert xtr.shape == (8, 16, 16, 3) and xte.shape == (2, 16, 16, 3)
    assert sorted(np.concatenate([ytr, yte]).tolist()) == [0] * 5 + [1] * 5


def test_to_tensor_resizes_and_keeps_uint8():
    x = np.zeros((3, 28, 28), np.uint8)
    x[:, 10:18, 10:18] = 255
    t = to_tensor(x, 20)
    assert t.shape == (3, 1, 20, 20) and t.dtype == torch.uint8 and t.max() == 255
    rgb = to_tensor(np.zeros((2, 32, 32, 3), np.uint8), 32)
    assert rgb.shape == (2, 3, 32, 32)
    assert as_uint8_images(np.ones((1, 4))).dtype == np.uint8
