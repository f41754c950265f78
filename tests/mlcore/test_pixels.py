"""The pixel baseline: thumbnails by area averaging and PCA, against naive references."""
import numpy as np

from mlcore.pixels import fit_pixel_basis, pixel_embeddings, thumbnails


def test_thumbnails_average_each_area():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    small = thumbnails(images, 16)
    ref = images.astype(float).reshape(3, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    assert small.shape == (3, 16, 16, 3)
    assert np.abs(small.astype(float) - ref).max() <= 0.5
    gray = thumbnails(images[..., 0], 16)
    assert gray.shape == (3, 16, 16) and np.abs(gray - ref[..., 0]).max() <= 0.5
    assert thumbnails(images[:, :20, :20, 0], 16).shape == (3, 16, 16)  # not a multiple


def test_the_basis_is_pca():
    rng = np.random.default_rng(1)
    # two directions of very different spread in a 4x4 'image'
    a, b = rng.normal(size=(2, 500, 1)) * [[[40.0]], [[5.0]]]
    d1, d2 = np.eye(16)[0], np.eye(16)[5]
    x = np.clip(128 + a * d1 + b * d2, 0, 255).astype(np.uint8).reshape(500, 4, 4)
    basis = fit_pixel_basis(x, dim=2)
    comps = np.abs(basis.components)
    assert list(np.argmax(comps, axis=1)) == [0, 5]  # by decreasing variance
    z = (x.reshape(500, -1) / 255.0 - basis.mean) @ basis.components.T
    emb = pixel_embeddings(x, basis)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(emb, z / np.linalg.norm(z, axis=1, keepdims=True), atol=1e-4)


def test_pixels_separate_what_pixels_separate():
    """Bright vs dark thumbnails: nearest neighbours in the baseline share the class."""
    rng = np.random.default_rng(2)
    bright = np.clip(rng.normal(200, 20, size=(50, 16, 16)), 0, 255)
    dark = np.clip(rng.normal(60, 20, size=(50, 16, 16)), 0, 255)
    x = np.concatenate([bright, dark]).astype(np.uint8)
    x[:, :8] = np.concatenate([np.full((50, 8, 16), 10), np.full((50, 8, 16), 240)])  # structure too
    emb = pixel_embeddings(x, fit_pixel_basis(x, dim=8))
    sims = emb @ emb.T
    np.fill_diagonal(sims, -2)
    nearest = sims.argmax(1)
    assert ((nearest < 50) == (np.arange(100) < 50)).mean() > 0.95
