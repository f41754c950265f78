"""PixelPool: the self-supervised learner's pool images read from a ``PixelStore`` on disk.

A learner trained on the pool's own pixels needs them at every step (random batches for
contrastive pretraining and fine-tuning, sequential ones to embed). Held in memory that is
N x C x S x S bytes, plus copies; at a million RGB images it no longer fits. A PixelPool
stands in for the (N, C, S, S) uint8 tensor: ``len``, ``shape``, indexing with a slice, an
index array or tensor (rows gathered from the memory-mapped file, in file order, onto
``device``), so ``pretrain``, ``finetune`` and ``embed`` take it unchanged. Only the rows of
the current batch are in memory; the page cache keeps the hot part of the file.

    store = PixelStore.open(folder, dim=C * S * S, side=S, channels=C)
    pool = PixelPool.of(store, item_ids, channels=C, side=S)   # pool order = item_ids order
    xb = pool[torch.tensor([4, 1, 7])]                          # (3, C, S, S) uint8
"""

from __future__ import annotations

import numpy as np
import torch

from mlcore.store import PixelStore


class PixelPool:
    dtype = torch.uint8

    def __init__(self, store: PixelStore, rows: np.ndarray, channels: int, side: int, device="cpu"):
        self.store = store
        self.rows = np.asarray(rows, dtype=np.int64)  # (N,) the store's file row of each pool row
        self.channels, self.side = int(channels), int(side)
        self.device = torch.device(device)
        if store.dim != self.channels * self.side * self.side:
            raise ValueError(f"the store holds rows of {store.dim} pixels, not {self.channels}x{self.side}x{self.side}")

    @classmethod
    def of(cls, store: PixelStore, item_ids, channels: int, side: int, device="cpu") -> PixelPool:
        """The pool of ``item_ids`` (in that order); KeyError for an id the store lacks."""
        return cls(store, store.rows_of(item_ids), channels, side, device)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple:
        return (len(self.rows), self.channels, self.side, self.side)

    def to(self, device) -> PixelPool:
        return PixelPool(self.store, self.rows, self.channels, self.side, device)

    def subset(self, positions) -> PixelPool:
        """The pool of these rows (positions into this pool), on the same device."""
        return PixelPool(self.store, self.rows[np.asarray(positions)], self.channels, self.side, self.device)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.detach().cpu().numpy()
        rows = self.rows[index]
        single = np.ndim(rows) == 0
        block = self.store.read_rows(np.atleast_1d(rows)).reshape(-1, self.channels, self.side, self.side)
        x = torch.from_numpy(block).to(self.device)
        return x[0] if single else x

    def images(self, positions=None) -> np.ndarray:
        """uint8 (n, S, S) or (n, S, S, 3), the layout images are imported in (thumbnails)."""
        rows = self.rows if positions is None else self.rows[np.asarray(positions)]
        block = self.store.read_rows(rows).reshape(-1, self.channels, self.side, self.side)
        return block[:, 0] if self.channels == 1 else block.transpose(0, 2, 3, 1)

    def tensor(self, device=None) -> torch.Tensor:
        """The whole pool as one (N, C, S, S) uint8 tensor (when it fits in memory)."""
        return self[slice(None)].to(device or self.device)
