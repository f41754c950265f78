"""Train / validation / test splits of a folder export: the `split` and `seed` options, and
the seeded, stratified draw of the exported items into the splits.

Stratified per class: each class is cut by its own fractions (largest remainder, so a class
of 10 at 0.8,0.1,0.1 gives 8/1/1 and the counts of every class add up exactly), after a
shuffle drawn from (seed, class name) over the class's item ids in ascending order. The same
labels and seed therefore always give the same split, whatever order the rows come in.
"""
import zlib

import numpy as np

from annotator.exporting.registry import ExportError

SPLIT_NAMES = ("train", "val", "test")
SUM_TOLERANCE = 1e-6
MAX_SEED = 2**32 - 1
EXAMPLE = "for example split=0.8,0.1,0.1 (train, val, test) or split=0.8,0.2 (train, val)"


def parse_split(value):
    """(train, val[, test]) fractions from "0.8,0.1,0.1", or None when not given."""
    text = (value or "").strip()
    if not text:
        return None
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 3):
        raise ExportError(f"split takes 2 or 3 fractions separated by commas ({EXAMPLE}), not {value!r}.")
    try:
        fractions = tuple(float(part) for part in parts)
    except ValueError:
        raise ExportError(f"split must be numbers separated by commas ({EXAMPLE}), not {value!r}.") from None
    if not all(0.0 <= f <= 1.0 for f in fractions):  # also refuses nan and inf
        raise ExportError(f"Each split fraction must be a number from 0 to 1 ({EXAMPLE}), not {value!r}.")
    total = sum(fractions)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ExportError(f"The split fractions must add up to 1, not {total:g} ({EXAMPLE}).")
    return fractions


def parse_seed(value):
    text = (value or "").strip() if isinstance(value, str) else value
    if text is None or text == "":
        return 0
    try:
        seed = int(text)
    except (TypeError, ValueError):
        seed = -1
    if not 0 <= seed <= MAX_SEED:
        raise ExportError(f"seed must be a whole number from 0 to {MAX_SEED}, not {value!r}.")
    return seed


def split_counts(n, fractions):
    """How many of n items each split gets: floor(n * f), then the leftovers to the largest
    remainders (ties to the earlier split)."""
    exact = [n * f for f in fractions]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(fractions)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


class SplitPlan:
    """Which split each item goes to; `split_of(item_id)` is a binary search over two
    arrays (9 bytes an item), so a million-item export holds no dict of rows."""

    def __init__(self, ids_by_class, fractions, seed):
        self.fractions = fractions
        self.names = SPLIT_NAMES[: len(fractions)]
        self.counts = {}  # class -> {split: n}
        ids, splits = [], []
        for name in sorted(ids_by_class):
            members = np.sort(np.asarray(ids_by_class[name], dtype=np.int64))  # (n,)
            rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
            members = rng.permutation(members)
            sizes = split_counts(len(members), fractions)
            ids.append(members)
            splits.append(np.repeat(np.arange(len(sizes), dtype=np.uint8), sizes))
            self.counts[name] = dict(zip(self.names, sizes))
        all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        all_splits = np.concatenate(splits) if splits else np.zeros(0, dtype=np.uint8)
        order = np.argsort(all_ids, kind="stable")
        self._ids, self._splits = all_ids[order], all_splits[order]

    def split_of(self, item_id):
        """The split's folder name; an item labeled after the plan was drawn (the export
        reads the labels twice) goes to train."""
        i = int(np.searchsorted(self._ids, item_id))
        if i < len(self._ids) and self._ids[i] == item_id:
            return self.names[int(self._splits[i])]
        return self.names[0]

    def summary(self, seed):
        return {"fractions": dict(zip(self.names, self.fractions)), "seed": seed, "counts": self.counts}
