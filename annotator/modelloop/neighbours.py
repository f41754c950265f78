"""The model's nearest neighbours of each pool image, read from the files the trainer wrote
with a version (`modelloop.results.write_neighbours`): the first NEIGHBOURS_K neighbours of
every row of the version's kNN graph, most similar first.

NumPy only, like `modelloop.predictions`: the web process never imports torch or mlcore.
Rows are positions in the version's pool_index.npy (the same rows as probs.npy); a row's
list may end in -1 (fewer neighbours than k in a tiny pool).
"""
import threading
from dataclasses import dataclass

import numpy as np

from annotator.modelloop.predictions import POOL_INDEX_FILE, artifact_path

NEIGHBOURS_FILE = "neighbours.npy"  # (N, K) int32: pool rows, most similar first; -1 = none
NEIGHBOUR_SIMS_FILE = "neighbour_sims.npy"  # (N, K) float16 cosine similarities
# 48 neighbours a row: one grid of images (at most BULK_GRID_MAX) from the first ring alone,
# 6 bytes each (int32 + float16): 288 MB for a million images, written only when the graph
# changes (fast versions in between link the same file).
NEIGHBOURS_K = 48

_cache = {}
_cache_lock = threading.Lock()


@dataclass
class Neighbours:
    pool_index: np.ndarray  # (N,) int64, sorted: the version's rows
    idx: np.ndarray  # (N, K) int32
    sims: np.ndarray  # (N, K) float16

    def row(self, pool_index):
        i = int(np.searchsorted(self.pool_index, pool_index))
        if i < len(self.pool_index) and self.pool_index[i] == pool_index:
            return i
        return None  # imported after this version

    def of_row(self, row):
        """(rows, similarities) of one row's neighbours, most similar first."""
        idx = np.asarray(self.idx[row], dtype=np.int64)
        keep = idx >= 0
        return idx[keep], np.asarray(self.sims[row], dtype=np.float32)[keep]

    def ranked(self, pool_index, hops=2):
        """The images near `pool_index`, best first, as (pool indices (M,), scores (M,)):
        its own neighbours (score: their similarity), then, with hops=2, their neighbours
        (score: the product of the two similarities along the best path), each image once
        with its best score, the image itself left out. Ties go to the lower pool index.
        Empty when the image is not in this version."""
        start = self.row(pool_index)
        if start is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        best = {}
        first, first_sims = self.of_row(start)
        for r, s in zip(first.tolist(), first_sims.tolist(), strict=True):
            best[r] = max(best.get(r, -np.inf), s)
        if hops >= 2:
            for r, s in zip(first.tolist(), first_sims.tolist(), strict=True):
                second, second_sims = self.of_row(r)
                for r2, s2 in zip(second.tolist(), (s * second_sims).tolist(), strict=True):
                    if s2 > best.get(r2, -np.inf):
                        best[r2] = s2
        best.pop(start, None)
        if not best:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        rows = np.fromiter(best, dtype=np.int64, count=len(best))
        scores = np.fromiter(best.values(), dtype=np.float32, count=len(best))
        order = np.lexsort((self.pool_index[rows], -scores))
        return self.pool_index[rows[order]], scores[order]


def load(version):
    """The Neighbours of a model version, or None (written before neighbour files existed,
    pruned, or a version without a graph)."""
    if version is None or not version.artifact_dir:
        return None
    key = (version.pk, version.artifact_dir)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    folder = artifact_path(version.artifact_dir)
    try:
        pool_index = np.load(folder / POOL_INDEX_FILE)
        idx = np.load(folder / NEIGHBOURS_FILE, mmap_mode="r")
        sims = np.load(folder / NEIGHBOUR_SIMS_FILE, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if idx.ndim != 2 or idx.shape != sims.shape or len(idx) != len(pool_index):
        return None
    found = Neighbours(pool_index, idx, sims)
    with _cache_lock:
        if len(_cache) > 16:
            _cache.clear()
        _cache[key] = found
    return found
