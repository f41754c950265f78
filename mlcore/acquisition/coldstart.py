"""Cold start: choose the first items to label before any label exists.

TypiClust (Hacohen et al. 2022) clusters the embeddings with k-means into |L|+B
clusters and asks for the most typical point of each of the largest uncovered
clusters. Measured on SimCLR MNIST embeddings its first 10 picks covered only 4-6 of
the 10 classes, because k-means in embedding space splits wide classes (slanted
1s) and merges close ones (4/9). Explicit coverage here comes from clustering the
*graph* instead: spectral clustering (Ng, Jordan, Weiss 2001) of the same kNN graph
that label propagation uses, so each pick seeds a region that propagation can reach
and distinct picks seed distinct regions.

The eigen-decomposition does not scale (14 s at 40k items, ~30 min at 1M on 2 cores), so
above ``spectral_max`` items the clusters come from k-means on the embeddings themselves
(FAISS k-means, which trains on a sample of 256 points per centroid and then assigns every
item), i.e. TypiClust proper; typicality still comes from the graph's neighbour lists.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

from mlcore.acquisition.cluster import kmeans, typicality
from mlcore.propagation import Graph


def spectral_embedding(S: sp.csr_matrix, dims: int, seed: int = 0) -> np.ndarray:
    """Top ``dims`` eigenvectors of S = D^-1/2 W D^-1/2, rows normalised to unit
    length (NJW step 4). (N, dims)."""
    n = S.shape[0]
    dims = max(2, min(dims, n - 2))
    if n <= 4000:
        # dense solver: exact also for repeated eigenvalues (one per connected
        # component), which Lanczos (eigsh) resolves only one vector of
        vals, vecs = np.linalg.eigh(S.toarray().astype(np.float64))
        vecs = vecs[:, np.argsort(-vals)[:dims]]
    else:
        v0 = np.random.default_rng(seed).random(n)
        _, vecs = eigsh(S.astype(np.float64), k=dims, which="LA", v0=v0, tol=1e-4, maxiter=5000)
    return (vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def cold_start(emb: np.ndarray, graph: Graph, n: int, labeled: np.ndarray | None = None,
               k: int = 20, seed: int = 0, max_dims: int = 48,
               spectral_cache: dict | None = None, spectral_max: int = 20_000) -> np.ndarray:
    """Pick n unlabelled items: typical points of uncovered spectral clusters, largest
    clusters first. emb (N, D) is unused by the spectral step but kept in the shared
    signature for callers that have no graph-free alternative. ``labeled`` (N,) bool.
    ``spectral_cache`` (a dict the caller keeps per graph) saves the eigen-decomposition
    between rounds. Above ``spectral_max`` items the clusters are k-means clusters of
    ``emb`` instead (see the module docstring). Returns (n,) distinct indices."""
    nitems = len(graph.idx)
    labeled = np.zeros(nitems, bool) if labeled is None else labeled.astype(bool)
    n = min(n, int((~labeled).sum()))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    n_clusters = n + int(labeled.sum())
    if nitems > spectral_max:
        assign = embedding_clusters(emb, n_clusters, seed)
    else:
        # 1. spectral clustering of the kNN graph; twice as many eigenvectors as clusters:
        #    on SimCLR MNIST (10k) the first 10 picks covered 9.6 classes on average with
        #    20 eigenvectors, 7.0 with 10, and 6.5 for TypiClust (k-means on embeddings)
        dims = min(2 * n_clusters, max_dims)
        cache = spectral_cache if spectral_cache is not None else {}
        if dims not in cache:
            cache[dims] = spectral_embedding(graph.S, dims, seed)
        u = cache[dims]  # (N, dims)
        _, assign = kmeans(u, n_clusters, seed=seed, nredo=3)
    # 2. typicality from the graph's neighbour similarities
    typ = typicality(graph.sims, k)  # (N,)
    # 3. clusters without labels, largest first; most typical member of each
    sizes = np.bincount(assign, minlength=n_clusters)
    covered = np.zeros(n_clusters, bool)
    covered[np.unique(assign[labeled])] = True
    picks = []
    # most typical unlabelled member of every cluster in one pass (no loop over items)
    cand = np.where(~labeled)[0]
    order = cand[np.lexsort((-typ[cand], assign[cand]))]  # by cluster, most typical first
    first = np.full(n_clusters, -1, np.int64)
    clusters, at = np.unique(assign[order], return_index=True)
    first[clusters] = order[at]
    for c in np.argsort(-sizes, kind="stable"):
        if covered[c] or sizes[c] == 0:
            continue
        if first[c] >= 0:
            picks.append(first[c])
        if len(picks) == n:
            break
    # 4. fewer uncovered clusters than n: most typical remaining items
    if len(picks) < n:
        rest = np.where(~labeled)[0]
        rest = rest[~np.isin(rest, picks)]
        picks += list(rest[np.argsort(-typ[rest], kind="stable")][: n - len(picks)])
    return np.asarray(picks, dtype=np.int64)


def embedding_clusters(emb: np.ndarray, n_clusters: int, seed: int = 0, niter: int = 20,
                       nredo: int = 3) -> np.ndarray:
    """k-means assignment (N,) of the embeddings (N, D) into n_clusters clusters (FAISS,
    best of ``nredo`` by inertia; centroids trained on at most 256 x n_clusters sampled
    points, then every item assigned to its nearest centroid, in chunks)."""
    import faiss

    from mlcore import knn
    x = np.ascontiguousarray(emb, dtype=np.float32)
    n_clusters = max(1, min(n_clusters, len(x)))
    km = faiss.Kmeans(x.shape[1], n_clusters, niter=niter, nredo=nredo, seed=seed,
                      max_points_per_centroid=256, verbose=False)
    km.train(x)
    assign = np.empty(len(x), np.int64)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(km.centroids)
    for i in range(0, len(x), knn.CHUNK):
        assign[i:i + knn.CHUNK] = index.search(x[i:i + knn.CHUNK], 1)[1][:, 0]
    return assign
