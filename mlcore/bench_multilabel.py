"""One-vs-rest propagation on synthetic multi-label blobs: exact-set match and Hamming loss of
the unanswered items, raw and with per-class calibration (the numbers in docs/model-loop.md).

    python -m mlcore.bench_multilabel [--noise 0.2 0.3] [--answers 12 30 60 120] [--seeds 5]

Six blobs of 300 unit vectors in 32-d around random directions, each blob one fixed set of
4 classes (the empty set included); a kNN graph (k = 10); answers drawn at random."""

from __future__ import annotations

import argparse

import numpy as np

from mlcore.config import PropagationConfig
from mlcore.multilabel import apply_calibration, calibrate_classes, heldout_sets, propagate_sets
from mlcore.propagation import knn_graph

SETS = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]], np.float32)


def blobs(noise: float, per_blob: int = 300, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, dim) unit rows, truth (N, 4) sets)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(len(SETS), dim))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    y = np.repeat(np.arange(len(SETS)), per_blob)
    x = mu[y] + noise * rng.normal(size=(len(y), dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), SETS[y]


def measure(noise: float, answers: int, seeds: int = 5) -> dict:
    """Mean over seeds of exact-set match, Hamming loss and Brier score, raw and calibrated."""
    x, truth = blobs(noise)
    graph = knn_graph(x, k=10, device="cpu")
    cfg = PropagationConfig()
    out = []
    for seed in range(seeds):
        labeled = np.zeros(len(x), bool)
        labeled[np.random.default_rng(seed).choice(len(x), answers, replace=False)] = True
        raw, _ = propagate_sets(graph, truth, labeled, truth.shape[1], cfg)
        rows, held = heldout_sets(graph, truth, labeled, truth.shape[1], cfg)
        calibrated = raw.copy()
        calibrated[~labeled] = apply_calibration(raw[~labeled], calibrate_classes(held, truth[rows] > 0))
        row = []
        for p in (raw, calibrated):
            guess, t = p[~labeled] >= 0.5, truth[~labeled] > 0
            row += [(guess == t).all(1).mean(), (guess != t).mean(), ((p[~labeled] - truth[~labeled]) ** 2).mean()]
        out.append(row)
    keys = ["exact_raw", "hamming_raw", "brier_raw", "exact_calibrated", "hamming_calibrated", "brier_calibrated"]
    return dict(zip(keys, np.mean(out, 0).round(3).tolist()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.2, 0.3])
    parser.add_argument("--answers", type=int, nargs="+", default=[12, 30, 60, 120])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    for noise in args.noise:
        for answers in args.answers:
            print(f"noise {noise} answers {answers}: {measure(noise, answers, args.seeds)}")


if __name__ == "__main__":
    main()
