"""The current model's guesses, read from the probability arrays the trainer wrote.

NumPy only: the web process never imports torch or mlcore. Files of a model version are
written before its row exists and never change afterwards, so a reader either sees no
version or a complete one. Arrays are memory-mapped and cached per version.
"""
import logging
import threading
from dataclasses import dataclass

import numpy as np
from django.db import connection

from annotator.modelloop import shared
from annotator.modelloop.set_measures import SUGGEST_AT
from annotator.models import ModelVersion, TrainerState

PROBS_FILE = "probs.npy"  # (N, C) float32, rows in pool_index order
POOL_INDEX_FILE = "pool_index.npy"  # (N,) int64, sorted
# Held-out (out-of-fold) probabilities of the labeled items, rows aligned across the three.
HELDOUT_ITEMS_FILE = "heldout_items.npy"  # (L,) int64 item ids
HELDOUT_LABELS_FILE = "heldout_labels.npy"  # (L,) int64 class column the humans gave; (L, C) 0/1 sets when multi-label
HELDOUT_PROBS_FILE = "heldout_probs.npy"  # (L, C) float32
TOP_K = 3

log = logging.getLogger(__name__)

_cache = {}
_cache_lock = threading.Lock()


artifact_path = shared.artifact_path  # noqa: E305 - the trainer's modules import it from here


@dataclass
class Predictions:
    version: ModelVersion
    classes: list
    pool_index: np.ndarray
    probs: np.ndarray

    def row(self, pool_index):
        i = int(np.searchsorted(self.pool_index, pool_index))
        if i < len(self.pool_index) and self.pool_index[i] == pool_index:
            return i
        return None  # imported after this version

    def probabilities(self, item):
        i = self.row(item.pool_index)
        return None if i is None else np.asarray(self.probs[i], dtype=np.float64)

    @property
    def multi_label(self):
        """Per-class probabilities (a multi-label project's version), not a distribution."""
        return bool((self.version.metrics or {}).get("multi_label"))

    def suggestion(self, item):
        """The guess in the shape the page and the API show:
        {"label", "confidence", "top": [{"label", "confidence"}, ...]}. A multi-label
        version's adds "labels", the suggested set (every class at or above SUGGEST_AT, in
        class order; [] when none is), and "set_confidence", the chance that this whole set
        is right if the classes are independent; "label"/"confidence"/"top" are then the
        most probable classes, each with its own probability."""
        p = self.probabilities(item)
        if p is None:
            return None
        order = np.argsort(-p, kind="stable")[:TOP_K]
        top = [{"label": self.classes[j], "confidence": round(float(p[j]), 4)} for j in order]
        guess = {"label": top[0]["label"], "confidence": top[0]["confidence"], "top": top}
        if self.multi_label:
            chosen = p >= SUGGEST_AT
            guess["labels"] = [name for name, on in zip(self.classes, chosen) if on]
            guess["set_confidence"] = round(float(np.where(chosen, p, 1.0 - p).prod()), 4)
        return guess


def load(version):
    key = (version.pk, version.artifact_dir)  # the folder name is unique: a reused pk never hits
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    try:
        folder = shared.folder(version.artifact_dir, (PROBS_FILE, POOL_INDEX_FILE))
        probs = np.load(folder / PROBS_FILE, mmap_mode="r")
        pool_index = np.load(folder / POOL_INDEX_FILE)
    except (OSError, ValueError):
        return None  # pruned or missing: no guesses rather than an error page
    except Exception:  # the bucket did not answer: no guesses rather than an error page
        log.exception("The files of model version %s could not be read", version.pk)
        return None
    preds = Predictions(version, list(version.classes), pool_index, probs)
    with _cache_lock:
        if len(_cache) > 16:
            _cache.clear()
        _cache[key] = preds
    return preds


def current(project):
    """Predictions of the project's current model version, or None before the first one.
    Every lease asks, so the version's id and folder are read by one hand-written statement
    and the version row itself only when its arrays are not cached yet."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT v.id, v.artifact_dir FROM {TrainerState._meta.db_table} s"
                       f" JOIN {ModelVersion._meta.db_table} v ON v.id = s.current_version_id"
                       f" WHERE s.project_id = %s", [project.pk])
        row = cursor.fetchone()
    if row is None or not row[1]:
        return None
    with _cache_lock:
        hit = _cache.get(tuple(row))
    if hit is not None:
        return hit
    version = ModelVersion.objects.filter(pk=row[0]).first()
    return load(version) if version is not None and version.artifact_dir else None


@dataclass
class Heldout:
    """The model's opinion of the human labels: each labeled item's probabilities from a
    propagation that did not see its label (k-fold), with the label it was checked against."""

    version: ModelVersion
    classes: list
    items: np.ndarray
    labels: np.ndarray
    probs: np.ndarray


def heldout(version):
    """The Heldout of a version, or None (too few labels then, or files pruned)."""
    if version is None or not version.artifact_dir:
        return None
    try:
        folder = shared.folder(version.artifact_dir, (HELDOUT_ITEMS_FILE, HELDOUT_LABELS_FILE, HELDOUT_PROBS_FILE))
        items = np.load(folder / HELDOUT_ITEMS_FILE)
        labels = np.load(folder / HELDOUT_LABELS_FILE)
        probs = np.load(folder / HELDOUT_PROBS_FILE, mmap_mode="r")
    except (OSError, ValueError):
        return None
    except Exception:
        log.exception("The held-out files of model version %s could not be read", version.pk)
        return None
    if not (len(items) == len(labels) == len(probs)) or probs.ndim != 2 or probs.shape[1] != len(version.classes):
        return None
    return Heldout(version, list(version.classes), items, labels, probs)
