"""PixelPool: the pool's pixels read from a PixelStore behave as the in-memory tensor does,
and a learner trained through it learns exactly what it learns from memory."""
import numpy as np
import pytest
import torch

from mlcore.config import EncoderConfig, LearnerConfig, PretrainConfig, PropagationConfig
from mlcore.data import to_tensor
from mlcore.learner import ActiveLearner
from mlcore.pixelpool import PixelPool
from mlcore.store import PixelStore


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(50, 12, 12, 3), dtype=np.uint8)


def pool_of(folder, images, ids=None, order=None):
    n, s = len(images), images.shape[1]
    ids = np.arange(100, 100 + n) if ids is None else ids
    store = PixelStore.open(folder, dim=3 * s * s)
    chw = to_tensor(images, s).numpy()  # (N, 3, S, S)
    shuffled = np.random.default_rng(1).permutation(n)  # stored in another order than the pool's
    store.add(ids[shuffled], chw[shuffled].reshape(n, -1))
    return PixelPool.of(store, ids, channels=3, side=s), torch.from_numpy(chw)


def test_indexing_matches_the_tensor(tmp_path, images):
    pool, ref = pool_of(tmp_path / "p", images)
    assert len(pool) == 50 and pool.shape == (50, 3, 12, 12)
    assert torch.equal(pool[2:9], ref[2:9])
    idx = torch.tensor([7, 3, 3, 49, 0])
    assert torch.equal(pool[idx], ref[idx]) and torch.equal(pool[idx.numpy()], ref[idx])
    assert torch.equal(pool[5], ref[5])
    assert torch.equal(pool.tensor(), ref)
    sub = pool.subset([4, 8])
    assert torch.equal(sub[slice(None)], ref[[4, 8]])
    np.testing.assert_array_equal(pool.images([1, 2]), images[[1, 2]])  # back to (n, S, S, C)


def test_a_missing_id_or_a_wrong_shape_is_refused(tmp_path, images):
    pool, _ = pool_of(tmp_path / "p", images)
    with pytest.raises(KeyError, match="not in the store"):
        PixelPool.of(pool.store, [1, 2], channels=3, side=12)
    with pytest.raises(ValueError, match="pixels"):
        PixelPool(pool.store, pool.rows, channels=1, side=12)
    with pytest.raises(ValueError, match="uint8"):
        pool.store.add([5], np.zeros((1, pool.store.dim), np.float32))


def test_the_store_reopens_with_its_pixels(tmp_path, images):
    pool, ref = pool_of(tmp_path / "p", images)
    again = PixelPool.of(PixelStore.open(tmp_path / "p", readonly=True), np.arange(100, 150), channels=3, side=12)
    assert torch.equal(again.tensor(), ref)


def test_a_learner_on_the_pixel_pool_learns_what_it_learns_from_memory(tmp_path, images):
    cfg = LearnerConfig(encoder=EncoderConfig(input_size=12, in_channels=3, widths=(8, 16)),
                        pretrain=PretrainConfig(epochs=2, batch_size=16), propagation=PropagationConfig(k=5), seed=0)
    pool, ref = pool_of(tmp_path / "p", images)
    from_disk = ActiveLearner(cfg, pool, device="cpu")
    from_memory = ActiveLearner(cfg, ref, device="cpu")
    torch.manual_seed(0)
    a = from_disk.pretrain()
    torch.manual_seed(0)
    b = from_memory.pretrain()
    np.testing.assert_allclose(a, b, atol=1e-5)
    grown, grown_ref = pool_of(tmp_path / "q", np.concatenate([images, images[:5] // 2]))
    known = np.r_[np.arange(50), -np.ones(5, np.int64)]
    np.testing.assert_allclose(from_disk.with_pool(grown, known=known).embeddings,
                               from_memory.with_pool(grown_ref, known=known).embeddings, atol=1e-5)
