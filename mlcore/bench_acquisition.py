"""``python -m mlcore.bench_acquisition``: many acquisition strategies side by side on
fixed embeddings, fast path only (propagation, no fine-tuning), as ``mlcore.bench
--no-slow`` runs the loop, so that a whole grid fits in one run.

Each run is "cold start until U labels per class, then strategy S" (``random`` alone:
random from the first label, as the app's ``random``). Test accuracy is the inductive
guess (``predict_embeddings``: kNN over the pool's propagated probabilities) at every
batch; the table gives it at the ``--points`` label counts, mean and sd over seeds.

Embeddings:
  ``mnist:DIR`` with ``--pretrained PATTERN`` (a ``mlcore.bench --save-pretrained``
  checkpoint per seed, ``{seed}`` in the pattern): the seed's 10k pool (as ``mlcore.bench``
  draws it) keeps the checkpoint's embeddings and the test set is embedded once;
  ``digits:FILE`` (scikit-learn's digits.csv.gz, or the wheel that holds it): 1,797 8x8
  digits, a seeded 2/3 pool and 1/3 test split, raw pixels centred on the pool mean as
  unit embeddings (no encoder).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import io
import json
import time
import zipfile

import numpy as np

from mlcore.acquisition.rank import rank
from mlcore.embedding_learner import EmbeddingLearner, unit_rows
from mlcore.presets import recommended_config
from mlcore.propagation import knn_search


def load_digits(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(X (1797, 64) float, y (1797,)) from digits.csv.gz or a scikit-learn wheel."""
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            raw = z.read("sklearn/datasets/data/digits.csv.gz")
    else:
        with open(path, "rb") as fh:
            raw = fh.read()
    data = np.loadtxt(io.StringIO(gzip.decompress(raw).decode()), delimiter=",")
    return data[:, :-1], data[:, -1].astype(np.int64)


def digits_embeddings(path: str, seed: int):
    x, y = load_digits(path)
    order = np.random.default_rng(seed).permutation(len(x))
    pool, test = order[: 2 * len(x) // 3], order[2 * len(x) // 3:]
    mean = x[pool].mean(0)
    return unit_rows(x[pool] - mean), y[pool], unit_rows(x[test] - mean), y[test], recommended_config(10, 8, 1)


def mnist_embeddings(spec: str, pattern: str, seed: int, pool_size: int = 10_000):
    """The pool ``mlcore.bench`` draws for this seed, with the checkpoint's embeddings."""
    from mlcore.data import load_dataset
    from mlcore.learner import ActiveLearner

    xtr, ytr, xte, yte = load_dataset(spec)
    idx = np.random.default_rng(seed).permutation(len(xtr))[:pool_size]
    learner = ActiveLearner.load(pattern.format(seed=seed), xtr[idx], "cpu")
    return learner.emb, ytr[idx], unit_rows(learner.embed(xte)), yte, learner.cfg


def test_neighbours(base: EmbeddingLearner, test_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weights (M, k), idx (M, k)) of ``knn_predict`` for the test set: the embeddings are
    fixed, so the neighbours are searched once and every round only re-weights them."""
    p = base.cfg.propagation
    sims, idx = knn_search(base.emb, test_emb, p.predict_k, p.exact_max, "cpu")
    return np.clip(sims, 0, None) ** p.gamma + 1e-12, idx


def run(base: EmbeddingLearner, y_pool, test_knn, y_test, until: int, strategy: str,
        budget: int, batch: int) -> dict:
    """One simulated session on a copy of ``base`` (same graph and spectral cache);
    ``test_knn`` from ``test_neighbours`` (the same guesses as ``predict_embeddings``)."""
    learner = copy.copy(base)
    learner.cfg = copy.deepcopy(base.cfg)
    learner.last = None
    c = learner.num_classes
    labels = np.full(len(y_pool), -1, np.int64)
    curve, covered, rank_s = {}, None, 0.0
    while True:
        n_lab = int((labels >= 0).sum())
        if n_lab:
            learner.fast_update(labels)
            w, idx = test_knn
            guess = (w[:, :, None] * learner.last.probs[idx]).sum(1).argmax(1)  # (M,)
            curve[n_lab] = float((guess == y_test).mean())
        if n_lab >= budget:
            break
        n = min(batch, budget - n_lab)
        t = time.perf_counter()
        if n_lab < until * c or (n_lab == 0 and strategy != "random"):
            # the same labels give the same picks: runs of one seed share their cold starts
            key = (n, labels.tobytes())
            if key not in base._bench_cold:
                base._bench_cold[key] = learner.cold_start(n, labels)
            nxt = base._bench_cold[key]
        else:
            if learner.last is None:
                learner.fast_update(labels)
            nxt = rank(learner.last.probs, learner.emb, labels, n, strategy, learner.cfg.acquisition,
                       learner._mc_probs, learner.cfg.seed, graph=learner.graph,
                       propagation=learner.cfg.propagation)
        rank_s += time.perf_counter() - t
        if covered is None:
            covered = int(len(np.unique(y_pool[nxt])))
        labels[nxt] = y_pool[nxt]
    return {"curve": curve, "first_batch_classes": covered, "rank_s": round(rank_s, 2)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m mlcore.bench_acquisition", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="mnist:../shared/datasets/mnist", help="mnist:DIR | digits:FILE")
    ap.add_argument("--pretrained", help="mnist: checkpoint path with {seed}, e.g. ckpt/mnist-quick-s{seed}.pt")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--strategies", default="margin,density-margin,coverage,coverage-margin,badge,eer,random")
    ap.add_argument("--cold-start", default="1,3,5,10", help="cold start until U labels per class, each U")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--points", default="20,50,100,200")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    ap.add_argument("--out", help="write the runs here as JSON")
    args = ap.parse_args(argv)
    if not args.data.startswith("digits:") and not args.pretrained:
        ap.error("--pretrained is needed for mnist (checkpoints of mlcore.bench --save-pretrained)")
    points = [int(p) for p in args.points.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {}
    if args.jobs > 1:  # one process per seed, the table as one run
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(min(args.jobs, len(seeds))) as pool:
            parts = list(pool.map(run_seed, [args] * len(seeds), seeds))
    else:
        parts = [run_seed(args, seed) for seed in seeds]
    for seed, part in zip(seeds, parts):
        for name, r in part.items():
            runs.setdefault(name, {})[seed] = r
    print_table(runs, points)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "runs": runs}, fh, indent=1)
    return runs


def run_seed(args, seed: int) -> dict:
    """Every (cold start, strategy) run of one seed: {name: run}."""
    kind, _, path = args.data.partition(":")
    points = [int(p) for p in args.points.split(",")]
    if kind == "digits":
        emb, y_pool, test_emb, y_test, cfg = digits_embeddings(path, seed)
    else:
        emb, y_pool, test_emb, y_test, cfg = mnist_embeddings(args.data, args.pretrained, seed)
    cfg.seed = seed
    base = EmbeddingLearner(cfg, emb, device="cpu")
    test_knn = test_neighbours(base, test_emb)
    base._bench_cold = {}
    out = {}
    for strategy in args.strategies.split(","):
        untils = [int(u) for u in args.cold_start.split(",")]
        untils = [0, *untils] if strategy == "random" else untils
        for until in untils:
            name = strategy if until == 0 else f"cs{until}+{strategy}"
            t = time.perf_counter()
            r = run(base, y_pool, test_knn, y_test, until, strategy, args.budget, args.batch)
            r["wall_s"] = round(time.perf_counter() - t, 2)
            out[name] = r
            print(f"seed {seed} {name:24s} " + " ".join(
                f"{p}:{100 * r['curve'].get(p, float('nan')):.1f}" for p in points)
                + f"  first batch {r['first_batch_classes']} classes, rank {r['rank_s']} s,"
                f" run {r['wall_s']} s", flush=True)
    return out


def print_table(runs: dict, points: list[int]) -> None:
    """Mean +- sd over seeds of the test accuracy (%) at each label count."""
    print(f"\n{'strategy':26s}" + "".join(f"{p:>14d}" for p in points) + "   first batch classes")
    for name, by_seed in runs.items():
        cells = []
        for p in points:
            v = 100 * np.array([r["curve"].get(p, np.nan) for r in by_seed.values()])
            cells.append(f"{v.mean():8.2f} ±{v.std(ddof=1) if len(v) > 1 else 0:4.2f}")
        cov = np.mean([r["first_batch_classes"] for r in by_seed.values()])
        print(f"{name:26s}" + "".join(f"{c:>14s}" for c in cells) + f"   {cov:.1f}")


if __name__ == "__main__":
    main()
