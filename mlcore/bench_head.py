"""``python -m mlcore.bench_head``: propagation alone against propagation + the embedding
head (``mlcore.head``), side by side in one process, on a pretrained self-supervised
checkpoint (``mlcore.bench --save-pretrained``), with the bench's own loop (no slow path).

    python -m mlcore.bench_head --pretrained /work/ckpt/mnist-quick-s0.pt --seed 0 \\
        --variants "mix=;mix=1" --strategies random,auto --budget 200

Pool and test are drawn as ``mlcore.bench`` draws them for the seed; the pool and test
embeddings come from the checkpoint's encoder once (``--cache FILE.npz`` keeps them), then
every (strategy, variant) runs on an ``EmbeddingLearner`` over those vectors. A variant is
``HeadConfig`` overrides, ``name=value`` joined by commas (``mix=`` turns the head off).
Prints one JSON line per run: test accuracy at 10/20/50/100/200 labels and the median
update time.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os

import numpy as np

from mlcore.bench import PROFILES, run_loop
from mlcore.config import HeadConfig
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.presets import TYPICAL_LABELS_PER_CLASS, recommended_config

POINTS = (10, 20, 50, 100, 200)


def head_config(spec: str) -> HeadConfig:
    default = HeadConfig()
    kw = {}
    for part in filter(None, spec.split(",")):
        name, _, value = part.partition("=")
        kind = type(getattr(default, name))
        kw[name] = (value not in ("", "0", "false")) if kind is bool else kind(value)
    return HeadConfig(**kw)


def embeddings(args) -> dict:
    if args.cache and os.path.exists(args.cache):
        return dict(np.load(args.cache))
    from mlcore.data import load_dataset
    from mlcore.learner import ActiveLearner

    xtr, ytr, xte, yte = load_dataset(args.data)
    pool_idx = np.random.default_rng(args.seed).permutation(len(xtr))[:PROFILES["quick"].pool_size]
    learner = ActiveLearner.load(args.pretrained, xtr[pool_idx], "cpu")
    d = {"pool": learner.emb, "y_pool": ytr[pool_idx], "test": learner.embed(xte), "y_test": yte}
    if args.cache:
        np.savez(args.cache, **d)
    return d


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="python -m mlcore.bench_head", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pretrained", required=True)
    ap.add_argument("--data", default="mnist:../shared/datasets/mnist")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="mix=;mix=1")
    ap.add_argument("--strategies", default="random,auto")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--cache", help="npz keeping the pool and test embeddings between runs")
    args = ap.parse_args(argv)
    d = embeddings(args)
    classes = int(max(d["y_pool"].max(), d["y_test"].max()) + 1)
    cfg = recommended_config(classes, 28, 1, seed=args.seed)
    cfg.acquisition.cold_start_until = TYPICAL_LABELS_PER_CLASS * classes  # as the app
    base = EmbeddingLearner(cfg, d["pool"], "cpu")
    loop_args = argparse.Namespace(initial="none", batch=args.batch, budget=args.budget, no_slow=True,
                                   seed=args.seed)
    out = []
    for strategy in args.strategies.split(","):
        for spec in args.variants.split(";"):
            learner = copy.copy(base)
            learner.cfg = dataclasses.replace(cfg, head=head_config(spec),
                                              acquisition=dataclasses.replace(cfg.acquisition, strategy=strategy))
            r = run_loop(learner, strategy, d["y_pool"], lambda _learner: d["test"], d["y_test"],
                         PROFILES["quick"], loop_args, f"{strategy} [{spec}]")
            acc = {c["labels"]: c["accuracy"] for c in r["curve"]}
            row = {"seed": args.seed, "strategy": strategy, "variant": spec,
                   "accuracy": {n: acc.get(n) for n in POINTS}, "update_s_median": r["update_s_median"]}
            print(json.dumps(row), flush=True)
            out.append(row)
    return out


if __name__ == "__main__":
    main()
