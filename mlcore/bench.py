"""``python -m mlcore.bench``: simulate an annotator and run the active-learning loop
exactly as the app runs it (through ``ActiveLearner``), writing ``DIR/result.json`` and
``DIR/curve.png``.

Loop: pretrain -> cold start (or Gal et al.'s balanced initial set) -> rounds of
[label the batch -> fast update -> (slow path on schedule) -> test accuracy -> rank
next batch]. Test images never enter the graph or training (inductive accuracy).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from mlcore.acquisition.rank import STRATEGY_NAMES
from mlcore.config import LearnerConfig
from mlcore.data import channels_of, load_dataset
from mlcore.device import get_device, seed_everything, set_cpu_threads
from mlcore.learner import ActiveLearner
from mlcore.presets import recommended_config

THRESHOLDS = ("0.90", "0.95", "0.98", "0.99")


@dataclass
class Profile:
    pool_size: int
    budget: int
    batch: int
    pretrain_budget_s: float
    pretrain_epochs: int
    slow_at: tuple  # label counts after which the slow path runs
    slow_budget_s: float
    slow_steps: int
    input_size: int | None = None  # None: keep the data's size
    widths: tuple = (32, 64, 128)
    extra: dict = field(default_factory=dict)


PROFILES = {
    # 2-core CPU, 10k pool: the whole chosen-strategy run must fit in 15 minutes
    "quick": Profile(pool_size=10_000, budget=100, batch=10, pretrain_budget_s=330,
                     pretrain_epochs=100, slow_at=(30, 40, 60, 80, 100), slow_budget_s=40,
                     slow_steps=200, input_size=20, widths=(16, 32, 128)),
    # GPU: full pool, longer pretraining and fine-tuning
    "full": Profile(pool_size=60_000, budget=200, batch=10, pretrain_budget_s=1800,
                    pretrain_epochs=200, slow_at=(20, 40, 60, 100, 150, 200), slow_budget_s=300,
                    slow_steps=2000, input_size=28, widths=(64, 128, 256)),
}


def make_config(p: Profile, channels: int, size: int, num_classes: int, args) -> LearnerConfig:
    cfg = recommended_config(num_classes, size, channels, gpu=args.profile == "full",
                             seed=args.seed, flip=args.flip)
    if p.input_size is not None:
        cfg.encoder.input_size = p.input_size
    cfg.encoder.widths = p.widths
    cfg.encoder.adapters = args.finetune_mode == "adapters"
    cfg.pretrain.method = args.pretrain_method
    cfg.pretrain.epochs = p.pretrain_epochs
    cfg.finetune.steps = p.slow_steps
    cfg.finetune.mode = args.finetune_mode
    if args.init_checkpoint and args.finetune_mode == "full":
        cfg.finetune.encoder_lr_scale = 0.1  # transferred weights: small learning rate
    cfg.acquisition.strategy = args.strategy
    return cfg


def initial_labels(spec: str, y: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """``none`` or ``balanced:K`` (K/C random items per class, Gal et al. 2017)."""
    labels = -np.ones(len(y), np.int64)
    if spec == "none":
        return labels
    kind, _, k = spec.partition(":")
    if kind != "balanced":
        raise ValueError(f"--initial none|balanced:K, not {spec!r}")
    rng = np.random.default_rng(seed + 1)
    per = int(k) // num_classes
    for c in range(num_classes):
        members = np.where(y == c)[0]
        pick = rng.choice(members, size=min(per, len(members)), replace=False)
        labels[pick] = c
    return labels


def labels_to(curve: list[dict]) -> dict:
    out = {}
    for t in THRESHOLDS:
        hit = [c["labels"] for c in curve if c["accuracy"] >= float(t)]
        out[t] = min(hit) if hit else None
    return out


def run_loop(learner: ActiveLearner, strategy: str, y_pool, test_x, y_test, prof: Profile, args,
             bar_desc: str) -> dict:
    """One simulated annotation session; returns its curve and timings."""
    from tqdm import tqdm

    t_start = time.perf_counter()
    labels = initial_labels(args.initial, y_pool, learner.cfg.num_classes, args.seed)
    slow_at = sorted(prof.slow_at)
    slow_done = set()
    test_emb = {}
    curve = []
    covered = None
    rank_s = 0.0
    accepted = []
    if not (labels >= 0).any():
        t = time.perf_counter()
        first = learner.rank(args.batch, labels, strategy)
        rank_s = time.perf_counter() - t
        covered = int(len(np.unique(y_pool[first])))
        labels[first] = y_pool[first]
    bar = tqdm(total=args.budget, desc=bar_desc, unit="label", dynamic_ncols=True)
    bar.update(int((labels >= 0).sum()))
    while True:
        n_lab = int((labels >= 0).sum())
        # 1. fast path: propagation over the pool
        t = time.perf_counter()
        learner.fast_update(labels)
        fast_s = time.perf_counter() - t
        # 2. slow path when a scheduled label count has been passed
        slow_s = 0.0
        due = [s for s in slow_at if s <= n_lab and s not in slow_done]
        if due and not args.no_slow:
            slow_done.update(due)
            bar.set_postfix_str("slow path")
            t = time.perf_counter()
            learner.finetune(labels, time_budget_s=prof.slow_budget_s)
            slow_s = time.perf_counter() - t
            accepted.append(bool(learner.accepted))
        # 3. inductive test accuracy of the model the app would use for its guesses
        if learner.version not in test_emb:
            test_emb.clear()
            test_emb[learner.version] = learner.embed(test_x)
        acc = float((learner.predict_embeddings(test_emb[learner.version]).argmax(1) == y_test).mean())
        pool_acc = float((learner.last.probs.argmax(1) == y_pool).mean())
        # 4. next batch (part of the fast path)
        nxt = np.zeros(0, np.int64)
        t = time.perf_counter()
        if n_lab < args.budget:
            nxt = learner.rank(min(args.batch, args.budget - n_lab), labels, strategy)
        rank_s += time.perf_counter() - t
        curve.append({"labels": n_lab, "accuracy": round(acc, 4), "pool_accuracy": round(pool_acc, 4),
                      "update_s": round(fast_s + rank_s, 3), "slow_s": round(slow_s, 2)})
        bar.set_postfix_str(f"acc {acc:.3f}")
        rank_s = 0.0
        if len(nxt) == 0:
            break
        labels[nxt] = y_pool[nxt]  # the simulated annotator answers with the truth
        bar.update(len(nxt))
    bar.close()
    upd = [c["update_s"] for c in curve]
    return {"strategy": strategy, "curve": curve, "labels_to": labels_to(curve),
            "update_s_median": float(np.median(upd)), "slow_s_total": round(sum(c["slow_s"] for c in curve), 2),
            "cold_start_classes_covered": covered,
            "slow_accepted": accepted, "loop_s": round(time.perf_counter() - t_start, 2)}


def plot(path: str, runs: list[dict], title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in runs:
        xs = [c["labels"] for c in r["curve"]]
        ys = [100 * c["accuracy"] for c in r["curve"]]
        ax.plot(xs, ys, marker="o", ms=3, label=r["strategy"])
    for t in (90, 95):
        ax.axhline(t, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("human labels (initial included)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m mlcore.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="mnist:../shared/datasets/mnist",
                    help="mnist:DIR | npz:FILE | folder:DIR")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    ap.add_argument("--pool-size", type=int)
    ap.add_argument("--test-size", type=int, help="default: the whole test set")
    ap.add_argument("--budget", type=int, help="total human labels, initial ones included")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--strategy", default="auto", choices=STRATEGY_NAMES)
    ap.add_argument("--compare", default="", help="comma-separated extra strategies, same model")
    ap.add_argument("--initial", default="none", help="none | balanced:K")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init-checkpoint", help="local encoder checkpoint to transfer from")
    ap.add_argument("--finetune-mode", choices=["full", "frozen", "adapters"], default="full")
    ap.add_argument("--pretrain-method", choices=["simclr", "byol"], default="simclr")
    ap.add_argument("--pretrain-budget-s", type=float)
    ap.add_argument("--slow-budget-s", type=float)
    ap.add_argument("--no-slow", action="store_true", help="fast path only")
    ap.add_argument("--flip", action="store_true", help="domain allows horizontal flips")
    ap.add_argument("--save-pretrained", help="write the pretrained learner checkpoint here")
    ap.add_argument("--pretrained", help="skip pretraining: load a --save-pretrained checkpoint")
    ap.add_argument("--out", default="bench-out")
    args = ap.parse_args(argv)

    # 1. data and profile
    t_wall = time.perf_counter()
    set_cpu_threads()
    seed_everything(args.seed)
    prof = dataclasses.replace(PROFILES[args.profile])
    if args.pretrain_budget_s is not None:
        prof.pretrain_budget_s = args.pretrain_budget_s
    if args.slow_budget_s is not None:
        prof.slow_budget_s = args.slow_budget_s
    args.budget = args.budget or prof.budget
    args.batch = args.batch or prof.batch
    xtr, ytr, xte, yte = load_dataset(args.data)
    rng = np.random.default_rng(args.seed)
    pool_size = min(args.pool_size or prof.pool_size, len(xtr))
    pool_idx = rng.permutation(len(xtr))[:pool_size]
    x_pool, y_pool = xtr[pool_idx], ytr[pool_idx]
    if args.test_size:
        te_idx = rng.permutation(len(xte))[:args.test_size]
        xte, yte = xte[te_idx], yte[te_idx]
    num_classes = int(max(ytr.max(), yte.max()) + 1)
    cfg = make_config(prof, channels_of(x_pool), x_pool.shape[1], num_classes, args)
    device = get_device()
    learner = ActiveLearner(cfg, x_pool, device)
    if args.pretrained:
        learner = ActiveLearner.load(args.pretrained, x_pool, device)
        prof.pretrain_budget_s = 0
    # 2. pretraining (continuing from a transferred encoder when given)
    from tqdm import tqdm

    if args.init_checkpoint:
        learner.init_from_checkpoint(args.init_checkpoint)
    t = time.perf_counter()
    if prof.pretrain_budget_s > 0:
        with tqdm(total=100, desc="pretrain", unit="%", dynamic_ncols=True) as bar:
            def progress(frac, info):
                bar.n = int(100 * frac)
                bar.set_postfix_str(f"loss {info['loss']:.3f} step {info['step']}/{info['total']}")
                bar.refresh()
            learner.pretrain(progress=progress, time_budget_s=prof.pretrain_budget_s)
    pretrain_s = time.perf_counter() - t
    if args.save_pretrained:
        learner.save(args.save_pretrained)
    snapshot = learner.snapshot()
    # 3. the chosen strategy, then the comparison strategies from the same encoder
    main_run = run_loop(learner, args.strategy, y_pool, xte, yte, prof, args, args.strategy)
    wall_s = time.perf_counter() - t_wall
    compare = []
    for name in [s for s in args.compare.split(",") if s]:
        learner.restore(snapshot)
        compare.append(run_loop(learner, name, y_pool, xte, yte, prof, args, name))
    # 4. report
    spec_kind = args.data.split(":", 1)[0]
    result = {
        "dataset": spec_kind,
        "data": args.data, "profile": args.profile, "strategy": args.strategy,
        "seed": args.seed, "device": str(device) + ("" if device.type == "cuda" else f" ({os.cpu_count()} cores)"),
        "pool_size": int(pool_size), "test_size": int(len(xte)), "initial": args.initial,
        "budget": args.budget, "batch": args.batch,
        "pretrain_s": round(pretrain_s, 2), "wall_s": round(wall_s, 2),
        **{k: v for k, v in main_run.items() if k != "strategy"},
        "compare": {r["strategy"]: {k: v for k, v in r.items() if k != "strategy"} for r in compare},
        "config": asdict(cfg), "profile_settings": asdict(prof),
        "torch": torch.__version__,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "result.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    plot(os.path.join(args.out, "curve.png"), [main_run] + compare,
         f"{result['dataset']} pool {pool_size}, {args.profile}, initial {args.initial}")
    print(json.dumps({"labels_to": result["labels_to"], "pretrain_s": result["pretrain_s"],
                      "wall_s": result["wall_s"], "update_s_median": result["update_s_median"],
                      "compare": {k: v["labels_to"] for k, v in result["compare"].items()}}))
    return result


if __name__ == "__main__":
    main()
