"""The pixel baseline serves only when it predicts held-out labels better than the
project's representation by more than the noise; the metrics say which one served."""
import numpy as np
import pytest

from annotator.modelloop import baseline, results
from annotator.modelloop.bridge import ProjectModel, new_config, resolve_device
from mlcore.embedding_learner import EmbeddingLearner

N, CLASSES = 90, 3


def _pool(seed=0):
    """Thumbnail-sized images whose class is plain in the pixels: a bright band at the top,
    middle or bottom."""
    rng = np.random.default_rng(seed)
    truth = np.arange(N) % CLASSES
    images = rng.integers(0, 60, size=(N, 32, 32), dtype=np.uint8)
    for i, c in enumerate(truth):
        images[i, 10 * c:10 * c + 10] = 230
    return images, truth


def _model(project, emb, images):
    """A model whose pool pixels are in a pixel store (as the trainer keeps them)."""
    from django.conf import settings

    from mlcore.pixelpool import PixelPool
    from mlcore.store import PixelStore

    cfg = new_config(CLASSES, 32, 1, resolve_device("cpu"))
    ids = np.arange(1, N + 1, dtype=np.int64)
    store = PixelStore.open(f"{settings.ARTIFACTS_ROOT}/pixels-test", dim=32 * 32)
    store.add(ids, images.reshape(N, -1))
    pool = PixelPool.of(store, ids, channels=1, side=32)
    model = ProjectModel(project.pk, EmbeddingLearner(cfg, emb, "cpu"), ids, ids - 1, pool, 32, 1,
                         [1, 2, 3], ["top", "middle", "bottom"])
    baseline.attach(model)
    return model


def _labels(truth, per_class=8):
    labels = np.full(N, -1)
    for c in range(CLASSES):
        labels[np.where(truth == c)[0][:per_class]] = c
    return labels


def test_pixels_serve_when_the_representation_knows_nothing(project):
    images, truth = _pool()
    noise = np.random.default_rng(1).normal(size=(N, 16)).astype(np.float32)
    model = _model(project, noise, images)
    labels = _labels(truth)
    probs, queue, _d, metrics, heldout = results.fast_path(project, model, labels, None, "margin", 5)
    assert metrics["served_by"] == "pixels" == model.served
    assert metrics["cv_accuracy_pixels"] > metrics["cv_accuracy_self-supervised"]
    assert (probs.argmax(1)[labels < 0] == truth[labels < 0]).mean() > 0.9
    assert len(queue) == 5 and (labels[queue] == -1).all()


def test_the_representation_serves_when_it_is_as_good(project):
    images, truth = _pool()
    centres = np.eye(16, dtype=np.float32)[:CLASSES] * 5
    good = centres[truth] + np.random.default_rng(2).normal(size=(N, 16)).astype(np.float32) * 0.3
    model = _model(project, good, images)
    _p, _q, _d, metrics, _h = results.fast_path(project, model, _labels(truth), None, "margin", 5)
    # both are right on (nearly) every held-out label: no win beyond the noise, the encoder serves
    assert metrics["cv_accuracy_self-supervised"] >= 0.9 and metrics["cv_accuracy_pixels"] >= 0.9
    assert metrics["served_by"] == "self-supervised"


@pytest.mark.parametrize("gained, lost, wins", [(0, 0, False), (3, 0, True), (2, 0, False), (10, 4, False),
                                                (20, 5, True)])
def test_the_sign_test(gained, lost, wins):
    labels = np.zeros(gained + lost + 5, int)
    own = np.zeros((len(labels), 2))
    pixels = np.zeros((len(labels), 2))
    own[:, 0] = 1
    pixels[:, 0] = 1
    own[:gained, :] = [0, 1]  # wrong where the pixels are right
    pixels[gained:gained + lost, :] = [0, 1]  # the pixels wrong where the representation is right
    assert baseline.pixels_win(labels, own, pixels) is wins
