"""EmbeddingStore: float16 embeddings of a project's images for ONE representation, on disk.

A representation is an encoder name + weights identity + generation (whatever keywords the
caller passes as ``identity``); each gets its own folder, so every image is embedded once
per encoder generation: a new import embeds only the ids ``missing()`` names, and a
restart embeds nothing.

Layout of a store folder::

    vectors.f16   float16 little-endian, (capacity, dim) row-major; row r is the r-th add
    ids.i64       int64 little-endian, the item id of each written row (-1: removed)
    meta.json     {"format", "dim", "rows", "count", "capacity", "identity", "created"}

``meta["rows"]`` is the commit point: rows at or beyond it, in either file, are ignored on
open (they are what a killed ``add`` left behind and the next ``add`` overwrites them).

Crash safety (a kill at any moment leaves a store that opens consistently):

1. ``add`` writes the new vectors and their ids *past* ``rows`` and fsyncs both files;
   nothing committed is touched, so a kill here loses only the uncommitted batch.
2. It then replaces ``meta.json`` atomically (``mlcore.checkpoint.atomic_write``: temp
   file + fsync + ``os.replace`` + fsync of the folder) with the new ``rows``: readers see
   the old or the new row count, and both point only at fsynced rows.
3. Growing extends ``vectors.f16`` with ``ftruncate`` (+ fsync) before step 1. Extending
   never moves or rewrites a committed byte, so it needs no copy-and-swap (no 2x disk
   for a million rows), a kill leaves the old or the new size, and a reader's existing
   memory map stays valid. The capacity is read from the file size, not from meta.
``remove_missing`` overwrites removed rows' ids with -1 in place (aligned 8-byte slots):
a kill part-way leaves a subset removed, each row either live with its own vector or
gone, and running it again finishes the job.

One writer per folder at a time (the caller's job queue guarantees it); any number of
readers (``readonly=True``, which never writes and never imports torch). A reader's view
is a snapshot; ``reload()`` picks up later commits.

Vectors are stored as given (cast to float16): the store does not normalise them. The
model loop passes L2-normalised rows, which float16 keeps to ~5e-4 per component.

``missing``/``get``/``as_array`` use a sorted copy of the ids and ``np.searchsorted``: no
Python loop over items, so a 1M x 384 store answers in milliseconds.
"""

from __future__ import annotations

import datetime
import json
import os

import numpy as np

FORMAT = 1
META = "meta.json"
VECTORS = "vectors.f16"
IDS = "ids.i64"
REMOVED = -1
_F16 = np.dtype("<f2")
_I64 = np.dtype("<i8")


def _atomic_write(path: str, data: bytes) -> None:
    # imported here: mlcore.checkpoint imports torch, which readers of a store never need
    from mlcore import checkpoint

    checkpoint.atomic_write(path, lambda fh: fh.write(data))


def _pwrite_all(fd: int, buf: memoryview, offset: int) -> None:
    """os.pwrite until every byte is written (a single call may write fewer)."""
    buf = buf.cast("B")
    while len(buf):
        n = os.pwrite(fd, buf, offset)
        buf, offset = buf[n:], offset + n


def _name_ids(ids: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:limit])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


def _as_ids(ids, what: str = "ids") -> np.ndarray:
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        raise ValueError(f"{what} must be a 1-D array of integers, got shape {arr.shape} dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _json_identity(identity: dict) -> dict:
    try:
        return json.loads(json.dumps(identity, sort_keys=True))
    except TypeError as exc:
        raise ValueError(f"identity values must be JSON-serialisable: {exc}") from None


class EmbeddingStore:
    """Float16 embeddings keyed by int64 item id, memory-mapped from a folder.

    Open with ``EmbeddingStore.open(folder, dim, encoder=..., weights=..., generation=...)``.
    Subclasses store other row types (``PixelStore``: uint8 pixels) with the same layout.
    """

    DTYPE = _F16  # on disk
    OUT_DTYPE = np.float32  # what get/as_array return
    VECTORS = VECTORS

    def __init__(self, folder: str, meta: dict, readonly: bool):
        self.folder = os.path.abspath(folder)
        self.readonly = readonly
        self._meta = meta
        self._load()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, folder, dim: int | None = None, *, readonly: bool = False, initial_capacity: int = 1024,
             **identity) -> EmbeddingStore:
        """Open the store in ``folder``, creating it (``dim`` required) when it has none.

        ``identity`` (e.g. ``encoder="dinov2_vits14", weights="<sha256>", generation=3``,
        JSON values) is recorded at creation; reopening with a different ``dim`` or a
        different identity raises ValueError (a new representation needs a new folder).
        Opening with no identity keywords accepts whatever the folder holds (a reader).
        ``readonly=True`` never creates, writes or cleans up anything.
        """
        folder = os.fspath(folder)
        meta_path = os.path.join(folder, META)
        identity = _json_identity(identity)
        if not os.path.exists(meta_path):
            if readonly:
                raise FileNotFoundError(f"no embedding store in {folder} (no {META})")
            if dim is None:
                raise ValueError(f"no embedding store in {folder} yet: pass dim to create one")
            cls._create(folder, int(dim), identity, int(initial_capacity))
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: unknown store format {meta.get('format')!r} (expected {FORMAT})")
        if dim is not None and int(dim) != meta["dim"]:
            raise ValueError(f"embedding store {folder} holds {meta['dim']}-d vectors, asked for {int(dim)}-d: "
                             f"a different representation needs its own folder")
        stored = meta.get("identity", {})
        if identity and identity != stored:
            keys = sorted(set(identity) | set(stored))
            diff = "; ".join(f"{k}: stored {stored.get(k)!r}, asked {identity.get(k)!r}"
                             for k in keys if stored.get(k) != identity.get(k))
            raise ValueError(f"embedding store {folder} belongs to another representation ({diff}): "
                             f"a new encoder, weights or generation needs its own folder")
        if not readonly:
            cls._clean_temporaries(folder)
        return cls(folder, meta, readonly)

    @classmethod
    def _create(cls, folder: str, dim: int, identity: dict, capacity: int) -> None:
        """Empty files first, meta.json last: the store exists once meta.json does, so a
        kill during creation leaves no store (and the next open simply starts over)."""
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        capacity = max(1, capacity)
        os.makedirs(folder, exist_ok=True)
        for name, nbytes in ((cls.VECTORS, capacity * dim * cls.DTYPE.itemsize), (IDS, 0)):
            with open(os.path.join(folder, name), "wb") as fh:
                fh.truncate(nbytes)
                fh.flush()
                os.fsync(fh.fileno())
        meta = {"format": FORMAT, "dim": dim, "rows": 0, "count": 0, "capacity": capacity,
                "identity": identity,
                "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        _atomic_write(os.path.join(folder, META), json.dumps(meta, indent=1).encode())

    @staticmethod
    def _clean_temporaries(folder: str) -> None:
        # what atomic_write leaves when killed between its temp file and the rename
        for name in os.listdir(folder):
            if name.startswith(".tmp-") and name.endswith(".part"):
                try:
                    os.unlink(os.path.join(folder, name))
                except FileNotFoundError:
                    pass

    def _load(self) -> None:
        """(Re)build the in-memory view from meta + files: only the first ``rows`` rows count."""
        meta = self._meta
        dim, rows = int(meta["dim"]), int(meta["rows"])
        vec_bytes = os.path.getsize(self._path(self.VECTORS))
        capacity = vec_bytes // (dim * self.DTYPE.itemsize)
        if rows > capacity or os.path.getsize(self._path(IDS)) < rows * _I64.itemsize:
            raise ValueError(f"embedding store {self.folder} is damaged: meta.json commits {rows} rows but "
                             f"{self.VECTORS}/{IDS} hold fewer")
        self._dim, self._rows, self._capacity = dim, rows, capacity
        row_ids = np.fromfile(self._path(IDS), dtype=_I64, count=rows).astype(np.int64)  # (rows,)
        self._row_ids = row_ids
        live_rows = np.flatnonzero(row_ids != REMOVED)  # (count,)
        order = np.argsort(row_ids[live_rows], kind="stable")
        self._sorted_ids = row_ids[live_rows][order]  # (count,) ascending
        self._sorted_rows = live_rows[order]  # (count,) row of each sorted id
        if len(self._sorted_ids) > 1 and not np.all(np.diff(self._sorted_ids) > 0):
            raise ValueError(f"embedding store {self.folder} is damaged: an id is stored twice")
        self._map()

    def _map(self) -> None:
        # (capacity, dim) DTYPE, read-only; writes go through pwrite on the same page cache
        self._mm = np.memmap(self._path(self.VECTORS), dtype=self.DTYPE, mode="r", shape=(self._capacity, self._dim))

    def reload(self) -> None:
        """Re-read meta.json and the ids: pick up what another process committed since."""
        with open(self._path(META), encoding="utf-8") as fh:
            self._meta = json.load(fh)
        self._load()

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def count(self) -> int:
        """Number of stored (live) ids."""
        return len(self._sorted_ids)

    def __len__(self) -> int:
        return self.count

    @property
    def capacity(self) -> int:
        """Rows the vectors file has room for (grows by doubling)."""
        return self._capacity

    @property
    def identity(self) -> dict:
        return dict(self._meta.get("identity", {}))

    @property
    def meta(self) -> dict:
        return dict(self._meta)

    @property
    def ids(self) -> np.ndarray:
        """(count,) int64 stored ids, in the order they were added."""
        return self._row_ids[self._row_ids != REMOVED]

    def __repr__(self) -> str:
        return f"EmbeddingStore({self.folder!r}, dim={self._dim}, count={self.count}, identity={self.identity})"

    # ------------------------------------------------------------------ lookups
    def _lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ids (n,) -> found (n,) bool, rows (n,) int64 (meaningless where not found)."""
        if len(self._sorted_ids) == 0 or len(ids) == 0:
            return np.zeros(len(ids), bool), np.zeros(len(ids), np.int64)
        pos = np.searchsorted(self._sorted_ids, ids)  # (n,)
        np.minimum(pos, len(self._sorted_ids) - 1, out=pos)
        return self._sorted_ids[pos] == ids, self._sorted_rows[pos]

    def __contains__(self, item_id) -> bool:
        return bool(self._lookup(np.array([int(item_id)], np.int64))[0][0])

    def missing(self, ids) -> np.ndarray:
        """The ids (in the order given) that the store does not hold: what to embed."""
        ids = _as_ids(ids)
        return ids[~self._lookup(ids)[0]]

    def rows_of(self, ids) -> np.ndarray:
        """The file row of each id (n,) int64, for ``read_rows``; KeyError naming absent ids."""
        ids = _as_ids(ids)
        found, rows = self._lookup(ids)
        if not found.all():
            raise KeyError(f"ids not in the store: {_name_ids(ids[~found])}")
        return rows.astype(np.int64)

    def read_rows(self, rows) -> np.ndarray:
        """DTYPE (n, dim) copies of file ``rows`` (from ``rows_of``), in the order given, read
        front to back."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), self._dim), self.DTYPE)
        out[order] = self._mm[rows[order]]
        return out

    def get(self, ids, chunk: int = 65536) -> np.ndarray:
        """ids (n,) -> OUT_DTYPE (n, dim), in the order asked; KeyError naming absent ids."""
        return self.as_array(ids, chunk=chunk)

    def as_array(self, order_ids=None, chunk: int = 65536, out: np.ndarray | None = None) -> np.ndarray:
        """OUT_DTYPE (float32) (n, dim) rows for ``order_ids`` (default: ``self.ids``), read
        from the memory map ``chunk`` rows at a time, so memory beyond the result is
        O(chunk * dim). ``out`` (n, dim) is filled instead of allocating (e.g. a np.memmap)."""
        if order_ids is None:
            live = self._row_ids != REMOVED
            rows = np.flatnonzero(live)  # (count,) ascending: sequential reads
        else:
            ids = _as_ids(order_ids)
            found, rows = self._lookup(ids)
            if not found.all():
                raise KeyError(f"ids not in the embedding store: {_name_ids(ids[~found])}")
        n = len(rows)
        if out is None:
            out = np.empty((n, self._dim), self.OUT_DTYPE)
        elif out.shape != (n, self._dim):
            raise ValueError(f"out has shape {out.shape}, expected {(n, self._dim)}")
        chunk = max(1, int(chunk))
        for s in range(0, n, chunk):
            r = rows[s:s + chunk]  # (c,)
            order = np.argsort(r, kind="stable")  # read the file front to back
            out[s + order] = self._mm[r[order]]  # (c, dim) DTYPE -> OUT_DTYPE
        return out

    # ------------------------------------------------------------------ writes
    def _writable(self) -> None:
        if self.readonly:
            raise PermissionError(f"embedding store {self.folder} was opened read-only")

    def add(self, ids, vectors) -> None:
        """Store ``vectors`` (n, dim) float32/float16 under ``ids`` (n,): ids must be >= 0,
        unique and not stored yet (ValueError naming them otherwise). Durable on return."""
        self._writable()
        ids = _as_ids(ids)
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self._dim):
            raise ValueError(f"vectors must have shape ({len(ids)}, {self._dim}) for {len(ids)} ids, "
                             f"got {vectors.shape}")
        n = len(ids)
        if n == 0:
            return
        if ids.min() < 0:
            raise ValueError(f"ids must be >= 0: {_name_ids(ids[ids < 0])}")
        uniq, counts = np.unique(ids, return_counts=True)
        if len(uniq) != n:
            raise ValueError(f"duplicate ids in one add: {_name_ids(uniq[counts > 1])}")
        present = ids[self._lookup(ids)[0]]
        if len(present):
            raise ValueError(f"ids already in the embedding store: {_name_ids(present)} "
                             f"(each image is embedded once per representation; add only store.missing(ids))")
        v16 = self._cast(vectors)  # (n, dim) DTYPE
        start, end = self._rows, self._rows + n
        self._grow(end)
        # 1. the new rows, past the committed ones, made durable
        for name, data, offset in ((self.VECTORS, v16, start * self._dim * self.DTYPE.itemsize),
                                   (IDS, ids.astype(_I64), start * _I64.itemsize)):
            fd = os.open(self._path(name), os.O_WRONLY)
            try:
                _pwrite_all(fd, memoryview(data), offset)
                os.fsync(fd)
            finally:
                os.close(fd)
        # 2. the commit: meta.json names the new row count
        self._commit(rows=end, count=self.count + n)
        # 3. the in-memory view (only after the commit succeeded)
        self._row_ids = np.concatenate([self._row_ids, ids])
        order = np.argsort(ids, kind="stable")
        new_ids, new_rows = ids[order], start + order.astype(np.int64)  # (n,), (n,)
        pos = np.searchsorted(self._sorted_ids, new_ids)  # (n,) insertion points, O(count + n)
        self._sorted_ids = np.insert(self._sorted_ids, pos, new_ids)
        self._sorted_rows = np.insert(self._sorted_rows, pos, new_rows)

    def _cast(self, vectors: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # reported just below
            v16 = np.ascontiguousarray(vectors, dtype=_F16)  # (n, dim)
        if not np.isfinite(v16).all():
            raise ValueError("vectors must be finite in float16 (|x| <= 65504, no NaN)")
        return v16

    def _grow(self, needed: int) -> None:
        """Double the vectors file until it holds ``needed`` rows (ftruncate: the committed
        prefix stays where it is)."""
        if needed <= self._capacity:
            return
        capacity = max(1, self._capacity)
        while capacity < needed:
            capacity *= 2
        with open(self._path(self.VECTORS), "r+b") as fh:
            fh.truncate(capacity * self._dim * self.DTYPE.itemsize)
            fh.flush()
            os.fsync(fh.fileno())
        self._capacity = capacity
        self._map()

    def _commit(self, rows: int, count: int) -> None:
        meta = dict(self._meta, rows=int(rows), count=int(count), capacity=int(self._capacity))
        _atomic_write(self._path(META), json.dumps(meta, indent=1).encode())
        self._meta, self._rows = meta, int(rows)

    def remove_missing(self, keep_ids) -> int:
        """Forget every stored id not in ``keep_ids`` (images deleted from the project);
        returns how many. Their rows stay in the file as unused space."""
        self._writable()
        keep = _as_ids(keep_ids, "keep_ids")
        drop = ~np.isin(self._sorted_ids, keep)  # (count,)
        if not drop.any():
            return 0
        drop_rows = np.sort(self._sorted_rows[drop])
        row_ids = self._row_ids.copy()
        row_ids[drop_rows] = REMOVED
        lo, hi = int(drop_rows[0]), int(drop_rows[-1]) + 1
        fd = os.open(self._path(IDS), os.O_WRONLY)
        try:
            _pwrite_all(fd, memoryview(np.ascontiguousarray(row_ids[lo:hi], dtype=_I64)), lo * _I64.itemsize)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._row_ids = row_ids
        self._sorted_ids, self._sorted_rows = self._sorted_ids[~drop], self._sorted_rows[~drop]
        self._commit(rows=self._rows, count=self.count)
        return int(drop.sum())


class PixelStore(EmbeddingStore):
    """Decoded pool images (uint8, one row of C*S*S pixels per item) for self-supervised
    training, in the same crash-safe, memory-mapped layout (``pixels.u8``): each image is
    decoded once per (side, channels), a restart decodes none, and the trainer reads
    batches from the page cache instead of holding the pool in memory."""

    DTYPE = np.dtype("u1")
    OUT_DTYPE = np.uint8
    VECTORS = "pixels.u8"

    def _cast(self, vectors: np.ndarray) -> np.ndarray:
        if vectors.dtype != np.uint8:
            raise ValueError(f"pixels must be uint8, got {vectors.dtype}")
        return np.ascontiguousarray(vectors)
