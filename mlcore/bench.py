"""``python -m mlcore.bench``: simulate an annotator and run the active-learning loop
exactly as the app runs it, writing ``DIR/result.json`` and ``DIR/curve.png``.

``--encoder self-supervised`` (default): the ``ActiveLearner`` pretrains on the pool's
pixels. Loop: pretrain -> cold start (or Gal et al.'s balanced initial set) -> rounds of
[label the batch -> fast update -> (slow path on schedule) -> test accuracy -> rank
next batch].

``--encoder NAME`` (a registered pretrained backbone: resnet18, resnet50, convnext_tiny,
vit_b_16, dinov2_vits14, dinov2_vitb14): the frozen backbone embeds pool and test images
once (local weights only; photos of ``folder:DIR`` read at their native size and streamed
through ``mlcore.imaging``; ``--cache DIR`` keeps the vectors), then the same loop runs on
an ``EmbeddingLearner``, as the app does for a project with a backbone (no pretraining,
no slow path).

Both use the app's configuration: ``presets.recommended_config`` and ``auto`` cold start
until ``TYPICAL_LABELS_PER_CLASS`` labels per class. Test images never enter the graph or
training (inductive accuracy); accuracy and balanced accuracy (mean per-class recall) are
reported at every point.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from mlcore.acquisition.rank import STRATEGY_NAMES
from mlcore.bench_data import Split, embed_with_cache, load_splits, median_side, resolve_weights, weights_identity
from mlcore.config import LearnerConfig
from mlcore.data import channels_of, load_dataset, load_folder
from mlcore.device import get_device, seed_everything, set_cpu_threads
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.encoders import catalog
from mlcore.learner import ActiveLearner
from mlcore.presets import TYPICAL_LABELS_PER_CLASS, recommended_config

SELF_SUPERVISED = "self-supervised"
ENCODERS = (SELF_SUPERVISED, *catalog.PRETRAINED)

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
    cfg.acquisition.cold_start_until = TYPICAL_LABELS_PER_CLASS * num_classes  # as the app
    return cfg


def make_embedding_config(num_classes: int, side: int, device: torch.device, args) -> LearnerConfig:
    """The app's config for a project with a pretrained backbone (bridge.new_config with
    3 channels): only propagation and acquisition matter to an EmbeddingLearner."""
    cfg = recommended_config(num_classes, side, 3, gpu=device.type == "cuda", seed=args.seed)
    cfg.acquisition.strategy = args.strategy
    cfg.acquisition.cold_start_until = TYPICAL_LABELS_PER_CLASS * num_classes
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


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``y_true`` (sklearn's
    balanced_accuracy_score): a rare class counts as much as a frequent one."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if len(y_true) == 0:
        return float("nan")
    n = int(max(y_true.max(), y_pred.max())) + 1
    total = np.bincount(y_true, minlength=n)  # (n,)
    hit = np.bincount(y_true[y_true == y_pred], minlength=n)  # (n,)
    present = total > 0
    return float(np.mean(hit[present] / total[present]))


def labels_to(curve: list[dict], key: str = "accuracy") -> dict:
    out = {}
    for t in THRESHOLDS:
        hit = [c["labels"] for c in curve if c[key] >= float(t)]
        out[t] = min(hit) if hit else None
    return out


def run_loop(learner: EmbeddingLearner, strategy: str, y_pool, embed_test, y_test, prof: Profile, args,
             bar_desc: str) -> dict:
    """One simulated annotation session; returns its curve and timings. ``embed_test(learner)``
    -> test embeddings (M, D), recomputed only when the learner's version changes."""
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
        if due and not args.no_slow and learner.can_finetune:
            slow_done.update(due)
            bar.set_postfix_str("slow path")
            t = time.perf_counter()
            learner.finetune(labels, time_budget_s=prof.slow_budget_s)
            slow_s = time.perf_counter() - t
            accepted.append(bool(learner.accepted))
        # 3. inductive test accuracy of the model the app would use for its guesses
        if learner.version not in test_emb:
            test_emb.clear()
            test_emb[learner.version] = embed_test(learner)
        pred = learner.predict_embeddings(test_emb[learner.version]).argmax(1)
        pool_pred = learner.last.probs.argmax(1)
        acc, bacc = float((pred == y_test).mean()), balanced_accuracy(y_test, pred)
        pool_acc, pool_bacc = float((pool_pred == y_pool).mean()), balanced_accuracy(y_pool, pool_pred)
        # 4. next batch (part of the fast path)
        nxt = np.zeros(0, np.int64)
        t = time.perf_counter()
        if n_lab < args.budget:
            nxt = learner.rank(min(args.batch, args.budget - n_lab), labels, strategy)
        rank_s += time.perf_counter() - t
        curve.append({"labels": n_lab, "accuracy": round(acc, 4), "balanced_accuracy": round(bacc, 4),
                      "pool_accuracy": round(pool_acc, 4), "pool_balanced_accuracy": round(pool_bacc, 4),
                      "update_s": round(fast_s + rank_s, 3), "slow_s": round(slow_s, 2)})
        bar.set_postfix_str(f"acc {acc:.3f} bal {bacc:.3f}")
        rank_s = 0.0
        if len(nxt) == 0:
            break
        labels[nxt] = y_pool[nxt]  # the simulated annotator answers with the truth
        bar.update(len(nxt))
    bar.close()
    upd = [c["update_s"] for c in curve]
    return {"strategy": strategy, "curve": curve, "labels_to": labels_to(curve),
            "labels_to_balanced": labels_to(curve, "balanced_accuracy"),
            "update_s_median": float(np.median(upd)), "slow_s_total": round(sum(c["slow_s"] for c in curve), 2),
            "cold_start_classes_covered": covered,
            "slow_accepted": accepted, "loop_s": round(time.perf_counter() - t_start, 2)}


# --- pretrained encoders: items, weights, embedding cache --------------------------------


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


def print_table(runs: list[dict]) -> None:
    """Accuracy and balanced accuracy (test, pool) at every point of each curve."""
    for r in runs:
        print(f"\n{r['strategy']}:  labels  accuracy  balanced  pool acc  pool bal")
        for c in r["curve"]:
            print(f"{'':{len(r['strategy']) + 2}}{c['labels']:>7}  {100 * c['accuracy']:7.1f}%  "
                  f"{100 * c['balanced_accuracy']:7.1f}%  {100 * c['pool_accuracy']:7.1f}%  "
                  f"{100 * c['pool_balanced_accuracy']:7.1f}%")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m mlcore.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="mnist:../shared/datasets/mnist",
                    help="mnist:DIR | npz:FILE | folder:DIR")
    ap.add_argument("--encoder", default=SELF_SUPERVISED, choices=ENCODERS,
                    help="self-supervised (pretraining on the pool's pixels, default) or a pretrained backbone")
    ap.add_argument("--weights", help="the pretrained encoder's local weight file")
    ap.add_argument("--weights-dir", default=os.environ.get("WEIGHTS_DIR"),
                    help="folder searched for the encoder's weight file when --weights is not given "
                         "(default $WEIGHTS_DIR; torch hub's cache is searched after it)")
    ap.add_argument("--cache", help="folder keeping the pretrained encoder's embeddings between runs")
    ap.add_argument("--embed-batch", type=int, default=64, help="images per forward pass when embedding")
    ap.add_argument("--workers", type=int, help="DataLoader workers reading photos (default: min(4, cpus - 1))")
    ap.add_argument("--test-fraction", type=float, default=0.2,
                    help="folder:DIR without train/ and test/: the seeded test split")
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
    backbone = args.encoder != SELF_SUPERVISED
    weights = None
    if backbone:
        for opt in ("init_checkpoint", "pretrained", "save_pretrained"):
            if getattr(args, opt):
                ap.error(f"--{opt.replace('_', '-')} is for the self-supervised encoder, not {args.encoder}")
        try:
            weights = resolve_weights(args.encoder, args.weights, args.weights_dir)
        except FileNotFoundError as e:
            ap.error(str(e))
    elif args.weights:
        ap.error("--weights needs --encoder NAME (a pretrained backbone)")

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
    device = get_device()
    if backbone:
        learner, y_pool, embed_test, yte, cfg, extra = setup_backbone(args, prof, weights, device)
        pretrain_s = 0.0
    else:
        learner, y_pool, embed_test, yte, cfg, extra, pretrain_s = setup_self_supervised(args, prof, device)
    pool_size = len(y_pool)
    start = learner.snapshot() if learner.can_finetune else copy.copy(learner)
    # 3. the chosen strategy, then the comparison strategies from the same encoder
    main_run = run_loop(learner, args.strategy, y_pool, embed_test, yte, prof, args, args.strategy)
    wall_s = time.perf_counter() - t_wall
    compare = []
    for name in [s for s in args.compare.split(",") if s]:
        if learner.can_finetune:
            learner.restore(start)
            again = learner
        else:  # same graph (and cached cold-start spectrum), no probabilities yet
            again = copy.copy(start)
        compare.append(run_loop(again, name, y_pool, embed_test, yte, prof, args, name))
    # 4. report
    spec_kind = args.data.split(":", 1)[0]
    result = {
        "dataset": spec_kind,
        "data": args.data, "profile": args.profile, "strategy": args.strategy,
        "encoder": args.encoder, **extra,
        "seed": args.seed, "device": str(device) + ("" if device.type == "cuda" else f" ({os.cpu_count()} cores)"),
        "pool_size": int(pool_size), "test_size": int(len(yte)), "initial": args.initial,
        "budget": args.budget, "batch": args.batch,
        "cold_start_until": cfg.acquisition.cold_start_until,
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
         f"{result['dataset']} pool {pool_size}, {args.encoder}, {args.profile}, initial {args.initial}")
    print_table([main_run] + compare)
    print(json.dumps({"encoder": args.encoder, "labels_to": result["labels_to"],
                      "labels_to_balanced": result["labels_to_balanced"], "pretrain_s": result["pretrain_s"],
                      "wall_s": result["wall_s"], "update_s_median": result["update_s_median"],
                      "compare": {k: v["labels_to"] for k, v in result["compare"].items()}}))
    return result


def _subsample(n: int, size: int | None, rng) -> np.ndarray:
    return rng.permutation(n)[:min(size, n)] if size else np.arange(n)


def setup_self_supervised(args, prof: Profile, device):
    """Today's path: arrays (folder photos resized), ActiveLearner, pretraining."""
    kind, _, arg = args.data.partition(":")
    if kind == "folder":
        xtr, ytr, xte, yte = load_folder(arg, test_fraction=args.test_fraction, seed=args.seed)[:4]
    else:
        xtr, ytr, xte, yte = load_dataset(args.data)
    rng = np.random.default_rng(args.seed)
    pool_idx = _subsample(len(xtr), args.pool_size or prof.pool_size, rng)
    x_pool, y_pool = xtr[pool_idx], ytr[pool_idx]
    if args.test_size:
        te_idx = rng.permutation(len(xte))[:args.test_size]
        xte, yte = xte[te_idx], yte[te_idx]
    num_classes = int(max(ytr.max(), yte.max()) + 1)
    cfg = make_config(prof, channels_of(x_pool), x_pool.shape[1], num_classes, args)
    learner = ActiveLearner(cfg, x_pool, device)
    if args.pretrained:
        learner = ActiveLearner.load(args.pretrained, x_pool, device)
        # the saved config, with this run's strategy and the app's cold-start length
        learner.cfg.acquisition.strategy = cfg.acquisition.strategy
        learner.cfg.acquisition.cold_start_until = cfg.acquisition.cold_start_until
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
    return learner, y_pool, lambda L: L.embed(xte), yte, learner.cfg, {}, pretrain_s


def setup_backbone(args, prof: Profile, weights: Path, device):
    """The app's path for a project with a pretrained backbone: embed pool and test once
    (cached), EmbeddingLearner on the vectors."""
    train, test, data_id, classes = load_splits(args.data, args.test_fraction, args.seed)
    rng = np.random.default_rng(args.seed)
    pool = train.take(_subsample(len(train), args.pool_size or prof.pool_size, rng))
    if args.test_size:
        test = test.take(rng.permutation(len(test))[:args.test_size])
    both = Split(pool.keys + test.keys, np.concatenate([pool.labels, test.labels]),
                 None if pool.paths is None else pool.paths + test.paths,
                 None if pool.images is None else np.concatenate([pool.images, test.images]))
    emb, info = embed_with_cache(both, args.encoder, weights, data_id, args, device)
    pool_emb, test_emb = emb[:len(pool)], emb[len(pool):]
    num_classes = len(classes) if classes else int(max(train.labels.max(), test.labels.max()) + 1)
    cfg = make_embedding_config(num_classes, median_side(pool), device, args)
    learner = EmbeddingLearner(cfg, pool_emb, device)
    extra = {"weights": weights_identity(weights), "embedding": {"dim": int(emb.shape[1]), **info}}
    if classes:
        extra["classes"] = classes
    return learner, pool.labels, lambda _learner: test_emb, test.labels, cfg, extra


if __name__ == "__main__":
    main()
