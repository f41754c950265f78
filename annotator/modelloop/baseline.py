"""Never worse than plain pixels: beside the project's representation (a pretrained
backbone's vectors or the self-supervised encoder's), the model keeps the cheapest one, a
PCA of 16 px thumbnails (`mlcore.pixels`), with its own kNN graph. Once there are
enough labels for held-out predictions, both predict the same held-out folds (no
representation was trained on the labels), and guesses and rankings come from the pixels
only when they win by more than the noise (a one-sided sign test on the items exactly one
of them gets right). The version's metrics and the status say which one served.
"""
import logging
from dataclasses import dataclass

import numpy as np

from annotator.modelloop.arrays import load_images, positions
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.pixels import THUMB_SIDE, fit_pixel_basis, pixel_embeddings, thumbnails

log = logging.getLogger(__name__)

PIXELS = "pixels"
# Above this many images the baseline is left out: its thumbnails are read one by one for a
# backbone's pool (no pixels in memory), which does not pay at that scale.
MAX_ITEMS = 200_000
# z of the one-sided sign test the pixels must pass to serve instead of the representation
WIN_Z = 1.645


@dataclass
class Baseline:
    learner: EmbeddingLearner
    thumbs: np.ndarray  # uint8 (N, 16, 16[, 3]) in the model's pool order
    basis: object  # mlcore.pixels.PixelBasis, fitted once so old rows keep their vectors


def attach(model):
    """Give a ready model its pixel baseline (None above MAX_ITEMS)."""
    if model.size > MAX_ITEMS:
        model.baseline = None
        return
    thumbs = _thumbs(model, np.zeros(model.size, bool), None)
    basis = fit_pixel_basis(thumbs, seed=model.learner.cfg.seed)
    model.baseline = Baseline(EmbeddingLearner(model.learner.cfg, pixel_embeddings(thumbs, basis),
                                               model.learner.device), thumbs, basis)


def grow(model, old_item_ids):
    """The pool changed (`model.item_ids` is the new one): thumbnails of the new items only,
    the same basis, a new graph."""
    old = model.baseline
    if old is None or model.size > MAX_ITEMS:
        attach(model)
        return
    rows = positions(old_item_ids, model.item_ids, missing=-1)  # old row of each new one, -1 new
    known = rows >= 0
    thumbs = _thumbs(model, known, old.thumbs[rows[known]])
    model.baseline = Baseline(old.learner.with_embeddings(pixel_embeddings(thumbs, old.basis), known=rows),
                              thumbs, old.basis)


def sync_classes(model):
    if model.baseline is not None:
        model.baseline.learner.set_num_classes(model.learner.num_classes, model.learner.cfg.acquisition.cold_start_until)


def _thumbs(model, known, previous):
    """Thumbnails in pool order: `previous` for the `known` rows, new ones for the rest
    (from the pixels in memory, or read from the files for a backbone's pool)."""
    shape = (model.size, THUMB_SIDE, THUMB_SIDE) + (() if model.channels == 1 else (3,))
    out = np.zeros(shape, np.uint8)
    if previous is not None:
        out[known] = previous
    new = np.where(~known)[0]
    if len(new):
        if model.images is not None:
            out[new] = thumbnails(model.images.images(new), THUMB_SIDE)
        else:
            out[new] = load_images([model.paths[i] for i in new], THUMB_SIDE, model.channels)
    return out


def pixels_win(labels, own, pixels):
    """Whether the pixels' held-out guesses beat the representation's by more than the
    noise: `own` and `pixels` are (L, C) held-out probabilities of the same labelled rows."""
    own_right, pixels_right = own.argmax(1) == labels, pixels.argmax(1) == labels
    gained = int((pixels_right & ~own_right).sum())
    lost = int((own_right & ~pixels_right).sum())
    if gained + lost == 0:
        return False
    z = (gained - lost) / np.sqrt(gained + lost)
    return bool(z > WIN_Z)
