import numpy as np

from mlcore.prototypes import fit_temperature, prototype_probs, prototypes


def test_prototypes_are_normalised_class_means():
    emb = np.array([[1, 0], [0, 1], [1, 1]], float) / np.array([[1], [1], [np.sqrt(2)]])
    t = np.array([[1, 0], [0, 1], [0, 0]], float)  # third item unlabelled
    P = prototypes(emb, t)
    np.testing.assert_allclose(P, [[1, 0], [0, 1]], atol=1e-6)
    probs = prototype_probs(emb, P, temperature=0.1)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    assert probs[0, 0] > 0.99 and abs(probs[2, 0] - 0.5) < 1e-6


def test_one_label_per_class_classifies_blobs(blobs):
    x, y = blobs(n_per=20, centers=5, spread=0.1)
    t = np.zeros((len(y), 5))
    for c in range(5):
        t[np.where(y == c)[0][0], c] = 1
    probs = prototype_probs(x, prototypes(x, t), 0.1)
    assert (probs.argmax(1) == y).mean() > 0.95


def test_missing_class_gets_zero_probability(blobs):
    x, y = blobs(n_per=10, centers=3)
    t = np.zeros((len(y), 3))
    t[0, 0] = t[10, 1] = 1
    probs = prototype_probs(x, prototypes(x, t), 0.1)
    assert np.all(probs[:, 2] == 0)


def test_fit_temperature_prefers_sharp_for_separated_data(blobs):
    x, y = blobs(n_per=5, centers=3, spread=0.02)
    t = np.eye(3)[y]
    temp = fit_temperature(x, t)
    assert temp is not None and temp <= 0.1
    assert fit_temperature(x[:3], np.eye(3)) is None  # one label per class: nothing to fit
