import torch

from mlcore import augment
from mlcore.device import generator


def batch(b=6, c=1, s=20):
    torch.manual_seed(0)
    return torch.rand(b, c, s, s)


def test_shapes_ranges_and_seeded_determinism():
    for c in (1, 3):
        x = batch(c=c)
        for fn in (lambda x, g: augment.weak(x, g, flip=True),
                   lambda x, g: augment.strong(x, g, flip=True),
                   lambda x, g: augment.contrastive(x, g, flip=True)):
            a = fn(x, generator(3, x.device))
            b = fn(x, generator(3, x.device))
            assert a.shape == x.shape
            assert a.min() >= 0 and a.max() <= 1
            assert torch.equal(a, b)
            assert not torch.equal(a, fn(x, generator(4, x.device)))


def test_weak_without_shift_is_identity():
    x = batch()
    y = augment.weak(x, generator(0, x.device), flip=False, max_shift=0.0)
    assert torch.allclose(x, y, atol=1e-5)


def test_weak_shift_moves_content():
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 6:10, 6:10] = 1
    moved = [augment.weak(x, generator(s, x.device), max_shift=0.25) for s in range(5)]
    centers = [(m[0, 0] * torch.arange(16.0)[None, :]).sum() / m.sum() for m in moved]
    assert max(centers) - min(centers) > 0.5
    assert all(abs(m.sum() - x.sum()) < 2 for m in moved)  # shifted, not destroyed


def test_erase_changes_only_one_rectangle():
    x = torch.ones(4, 1, 12, 12)
    y = augment.erase(x, generator(0, x.device), prob=1.0, value=0.0)
    for i in range(4):
        zero = (y[i, 0] == 0).nonzero()
        assert len(zero) > 0
        h = zero[:, 0].max() - zero[:, 0].min() + 1
        w = zero[:, 1].max() - zero[:, 1].min() + 1
        assert len(zero) == h * w
