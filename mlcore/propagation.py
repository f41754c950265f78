"""Label propagation on a kNN graph (Iscen, Tolias, Avrithis, Chum, CVPR 2019).

Pure functions on arrays:
  knn_search -> knn_graph -> normalize_graph -> propagate -> probabilities
  -> certainty_weights / class_weights.
``knn_search`` is the single place that chooses CPU (FAISS) or GPU (torch matmul + topk).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# --- neighbour search -----------------------------------------------------------------

def knn_search(base: np.ndarray, query: np.ndarray, k: int, exact_max: int = 100_000,
               device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner products of each query row among base rows.

    Returns (sims (Nq, k) float32, idx (Nq, k) int64), best first. On CUDA a chunked
    matmul + topk (measured 45x faster than FAISS on 16 CPU cores for 60k x 128); on
    CPU exact FAISS IndexFlatIP up to ``exact_max`` base rows, HNSW above."""
    base = np.ascontiguousarray(base, dtype=np.float32)
    query = np.ascontiguousarray(query, dtype=np.float32)
    k = min(k, len(base))
    if device is None:
        from mlcore.device import get_device
        device = get_device().type
    if str(device).startswith("cuda"):
        import torch
        b = torch.from_numpy(base).to(device)
        sims, idx = [], []
        for i in range(0, len(query), 8192):
            q = torch.from_numpy(query[i:i + 8192]).to(device)
            s, j = (q @ b.t()).topk(k, dim=1)  # (chunk, k)
            sims.append(s.cpu())
            idx.append(j.cpu())
        return torch.cat(sims).numpy(), torch.cat(idx).numpy().astype(np.int64)
    import faiss
    d = base.shape[1]
    if len(base) <= exact_max:
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(64, 2 * k)
    index.add(base)
    sims, idx = index.search(query, k)
    return sims.astype(np.float32), idx.astype(np.int64)


@dataclass
class Graph:
    """kNN graph of the pool: neighbours without self, and the normalised affinity S."""
    idx: np.ndarray  # (N, k) int64
    sims: np.ndarray  # (N, k) float32 cosine similarities
    S: sp.csr_matrix  # (N, N) D^-1/2 W D^-1/2


def knn_graph(emb: np.ndarray, k: int = 50, gamma: float = 3.0, exact_max: int = 100_000,
              device: str | None = None) -> Graph:
    """Graph on L2-normalised embeddings (N, D); self-matches are removed."""
    sims, idx = knn_search(emb, emb, k + 1, exact_max, device)
    # drop the self-match wherever it landed (exact duplicates can outrank it); rows
    # whose self-match fell outside the top k+1 drop their last neighbour instead
    n = len(emb)
    is_self = idx == np.arange(n)[:, None]
    is_self[~is_self.any(1), -1] = True
    idx = idx[~is_self].reshape(n, -1)
    sims = sims[~is_self].reshape(n, -1)
    return Graph(idx, sims, normalize_graph(affinity(idx, sims, gamma)))


def affinity(idx: np.ndarray, sims: np.ndarray, gamma: float = 3.0) -> sp.csr_matrix:
    """a_ij = [v_i^T v_j]_+^gamma for j in NN_k(i) (Iscen eq. 8); W = A + A^T (eq. 9)."""
    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    vals = np.clip(sims.ravel(), 0, None) ** gamma
    a = sp.csr_matrix((vals, (rows, idx.ravel())), shape=(n, n))
    return (a + a.T).tocsr()


def normalize_graph(w: sp.csr_matrix) -> sp.csr_matrix:
    """S = D^-1/2 W D^-1/2 with D = diag(W 1) (Iscen eq. 9 / Zhou et al. 2004)."""
    d = np.asarray(w.sum(axis=1)).ravel()
    dinv = 1.0 / np.sqrt(np.maximum(d, 1e-12))
    dm = sp.diags(dinv)
    return (dm @ w @ dm).tocsr().astype(np.float32)


# --- propagation ----------------------------------------------------------------------

def check_labels(labels, num_classes: int, n: int | None = None) -> np.ndarray:
    """labels as an int64 array (N,) in [-1, num_classes); a clear ValueError
    otherwise (the app passes user data)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"labels has {len(arr)} entries but the pool has {n} items")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise ValueError(f"labels must be integers (-1 = unlabelled), got {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < -1) | (arr >= num_classes)
    if bad.any():
        raise ValueError(f"labels must be in [-1, {num_classes - 1}] (-1 = unlabelled); "
                         f"got {arr[bad][0]} at index {int(np.argmax(bad))}")
    return arr


def label_matrix(labels: np.ndarray, num_classes: int, soft: np.ndarray | None = None,
                 balance: bool = False) -> np.ndarray:
    """Y (N, C): one-hot rows for labelled items (-1 = unlabelled), soft rows where
    given; ``balance`` divides each column by its label mass so frequent classes do
    not flood the graph."""
    labels = check_labels(labels, num_classes)
    y = np.zeros((len(labels), num_classes), dtype=np.float32)
    lab = labels >= 0
    y[np.where(lab)[0], labels[lab]] = 1.0
    if soft is not None:
        has = soft.sum(1) > 0
        y[has] = soft[has] / soft[has].sum(1, keepdims=True)
    if balance:
        y = y / np.maximum(y.sum(0, keepdims=True), 1e-12)
    return y


def propagate(S: sp.csr_matrix, Y: np.ndarray, alpha: float = 0.99, iters: int = 20,
              tol: float = 1e-6) -> np.ndarray:
    """Solve (I - alpha S) Z = Y (Iscen eq. 10) by conjugate gradient, all C columns
    at once; I - alpha S is symmetric positive definite for alpha < 1. Z (N, C)."""
    Y = Y.astype(np.float64)
    Z = np.zeros_like(Y)
    R = Y.copy()
    P = R.copy()
    rs = (R * R).sum(0)  # (C,)
    stop = (tol * np.linalg.norm(Y, axis=0)) ** 2
    for _ in range(iters):
        AP = P - alpha * (S @ P)  # (N, C)
        step = rs / np.maximum((P * AP).sum(0), 1e-300)
        Z += step * P
        R -= step * AP
        rs_new = (R * R).sum(0)
        if np.all(rs_new <= stop):
            break
        P = R + (rs_new / np.maximum(rs, 1e-300)) * P
        rs = rs_new
    return Z.astype(np.float32)


def probabilities(Z: np.ndarray) -> np.ndarray:
    """Row-normalised [Z]_+ (Iscen eq. 11-12 use z_ij / sum_k z_ik); rows that no label
    reached become uniform."""
    Z = np.clip(Z, 0, None)
    s = Z.sum(1, keepdims=True)
    c = Z.shape[1]
    return np.where(s > 0, Z / np.maximum(s, 1e-30), 1.0 / c).astype(np.float32)


def certainty_weights(P: np.ndarray) -> np.ndarray:
    """omega_i = 1 - H(p_i) / log C (Iscen eq. 12): 1 for one-hot, 0 for uniform."""
    c = P.shape[1]
    if c <= 1:  # one class: every prediction is certain (log C = 0)
        return np.ones(len(P), np.float32)
    h = -(P * np.log(np.clip(P, 1e-12, None))).sum(1)
    return (1.0 - h / np.log(c)).clip(0, 1).astype(np.float32)


def class_weights(pseudo: np.ndarray, num_classes: int) -> np.ndarray:
    """zeta_j = 1 / |L_j + U_j| (Iscen eq. 13), rescaled to mean 1 over the items, so
    each class weighs the same in the pseudo-label loss. Returns per-item (N,)."""
    counts = np.bincount(pseudo, minlength=num_classes).astype(np.float64)
    zeta = 1.0 / np.maximum(counts, 1)
    w = zeta[pseudo]
    return (w / w.mean()).astype(np.float32)


def knn_predict(query: np.ndarray, base: np.ndarray, base_probs: np.ndarray, k: int = 20,
                gamma: float = 3.0, exact_max: int = 100_000, device: str | None = None) -> np.ndarray:
    """Inductive extension of propagation for items outside the graph: the average of
    the k nearest pool items' probabilities weighted by [similarity]_+^gamma, the same
    affinity as the graph. (Nq, C)."""
    sims, idx = knn_search(base, query, k, exact_max, device)
    w = np.clip(sims, 0, None) ** gamma + 1e-12  # (Nq, k)
    p = (w[:, :, None] * base_probs[idx]).sum(1) / w.sum(1, keepdims=True)
    return (p / p.sum(1, keepdims=True)).astype(np.float32)
