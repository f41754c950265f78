"""The benchmark's report: curves of one seed, the summary over seeds (mean and sd of
accuracy at every label count, labels to each threshold per seed, the difference of each
strategy from random), its plot with bands, and the printed tables.

``python -m mlcore.bench_report DIR`` writes DIR/summary.json and DIR/curve.png again from
the per-seed DIR/seed-N/result.json files (e.g. after a run whose seeds finished but whose
parent process did not)."""

from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np

THRESHOLDS = ("0.90", "0.95", "0.98", "0.99")
METRICS = ("accuracy", "balanced_accuracy")
BASELINE = "random"


def labels_to(curve: list[dict], key: str = "accuracy") -> dict:
    """{threshold: the fewest labels at which ``key`` reached it, or None}."""
    out = {}
    for t in THRESHOLDS:
        hit = [c["labels"] for c in curve if c[key] >= float(t)]
        out[t] = min(hit) if hit else None
    return out


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


def runs_of(result: dict) -> dict:
    """{strategy: run} of one seed's result.json (the main strategy and the compared ones)."""
    return {result["strategy"]: result, **result["compare"]}


def mean_sd(values) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1); sd is None for a single value."""
    v = np.asarray(values, np.float64)
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None)


def _by_labels(run: dict, key: str) -> dict:
    return {c["labels"]: c[key] for c in run["curve"]}


def summarize(results: list[dict]) -> dict:
    """Per strategy and label count, mean and sd over seeds of accuracy and balanced
    accuracy (label counts every seed reached); labels to each threshold per seed; and for
    each strategy other than random, the paired difference strategy - random per seed."""
    strategies = list(runs_of(results[0]))
    per_seed = [runs_of(r) for r in results]
    curves, reached, reached_bal = {}, {}, {}
    for s in strategies:
        counts = sorted(set.intersection(*(set(_by_labels(runs[s], "accuracy")) for runs in per_seed)))
        rows = []
        for n in counts:
            row = {"labels": n}
            for key in METRICS:
                m, sd = mean_sd([_by_labels(runs[s], key)[n] for runs in per_seed])
                row[f"{key}_mean"], row[f"{key}_sd"] = round(m, 5), None if sd is None else round(sd, 5)
            rows.append(row)
        curves[s] = rows
        reached[s] = {t: [runs[s]["labels_to"][t] for runs in per_seed] for t in THRESHOLDS}
        reached_bal[s] = {t: [runs[s]["labels_to_balanced"][t] for runs in per_seed] for t in THRESHOLDS}
    difference = {}
    if BASELINE in strategies:
        for s in strategies:
            if s == BASELINE:
                continue
            counts = [row["labels"] for row in curves[s] if row["labels"] in {r["labels"] for r in curves[BASELINE]}]
            rows = []
            for n in counts:
                m, sd = mean_sd([_by_labels(runs[s], "accuracy")[n] - _by_labels(runs[BASELINE], "accuracy")[n]
                                 for runs in per_seed])
                rows.append({"labels": n, "accuracy_mean": round(m, 5), "accuracy_sd": None if sd is None else round(sd, 5)})
            difference[f"{s}-{BASELINE}"] = rows
    return {"seeds": [r["seed"] for r in results], "strategies": strategies, "curves": curves,
            "labels_to": reached, "labels_to_balanced": reached_bal, "difference": difference}


def _pm(mean: float, sd: float | None, sign: bool = False) -> str:
    text = f"{100 * mean:+.1f}" if sign else f"{100 * mean:.1f}"
    return text if sd is None else f"{text} ± {100 * sd:.1f}"


def summary_table(summary: dict) -> str:
    """Accuracy (%) mean ± sd at each label count, strategies side by side, then each
    strategy's difference from random (percentage points, mean ± sd of the paired
    per-seed differences)."""
    strategies = summary["strategies"]
    diffs = summary["difference"]
    head = ["labels", *strategies, *(f"{d.replace('-', ' − ')} (pts)" for d in diffs)]
    rows = {}
    for s in strategies:
        for r in summary["curves"][s]:
            rows.setdefault(r["labels"], {})[s] = _pm(r["accuracy_mean"], r["accuracy_sd"])
    for d, lines in diffs.items():
        for r in lines:
            rows.setdefault(r["labels"], {})[d] = _pm(r["accuracy_mean"], r["accuracy_sd"], sign=True)
    cols = [*strategies, *diffs]
    body = [[str(n), *(rows[n].get(c, "") for c in cols)] for n in sorted(rows)]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    seeds = summary["seeds"]
    title = (f"test accuracy (%), mean ± sd over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1
             else f"test accuracy (%), seed {seeds[0]}")
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    for s in strategies:
        per = summary["labels_to"][s]
        lines.append(f"{s}: labels to " + ", ".join(
            f"{float(t):.0%} {'/'.join('-' if v is None else str(v) for v in per[t])}" for t in THRESHOLDS[:2]))
    return "\n".join(lines)


def print_curves(runs: list[dict]) -> None:
    """Accuracy and balanced accuracy (test, pool) at every point of each curve of one seed."""
    for r in runs:
        print(f"\n{r['strategy']}:  labels  accuracy  balanced  pool acc  pool bal")
        for c in r["curve"]:
            print(f"{'':{len(r['strategy']) + 2}}{c['labels']:>7}  {100 * c['accuracy']:7.1f}%  "
                  f"{100 * c['balanced_accuracy']:7.1f}%  {100 * c['pool_accuracy']:7.1f}%  "
                  f"{100 * c['pool_balanced_accuracy']:7.1f}%")


def _axes(title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for t in (90, 95):
        ax.axhline(t, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("human labels (initial included)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return plt, fig, ax


def plot(path: str, runs: list[dict], title: str) -> None:
    """One seed: test accuracy against labels, one line per strategy."""
    plt, fig, ax = _axes(title)
    for r in runs:
        ax.plot([c["labels"] for c in r["curve"]], [100 * c["accuracy"] for c in r["curve"]],
                marker="o", ms=3, label=r["strategy"])
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bands(path: str, summary: dict, title: str) -> None:
    """Over seeds: the mean line and a mean ± sd band per strategy."""
    plt, fig, ax = _axes(title)
    for s in summary["strategies"]:
        rows = summary["curves"][s]
        xs = [r["labels"] for r in rows]
        mean = np.array([100 * r["accuracy_mean"] for r in rows])
        sd = np.array([0.0 if r["accuracy_sd"] is None else 100 * r["accuracy_sd"] for r in rows])
        (line,) = ax.plot(xs, mean, marker="o", ms=3, label=f"{s} (n={len(summary['seeds'])})")
        ax.fill_between(xs, mean - sd, mean + sd, color=line.get_color(), alpha=0.2, lw=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_summary(out: str, results: list[dict]) -> dict:
    """OUT/summary.json (the run's settings from the first seed's result, the summary,
    each seed's result file) and OUT/curve.png; prints the table; returns the summary."""
    summary = summarize(results)
    print()
    print(summary_table(summary))
    first = results[0]
    summary = {**{k: first[k] for k in ("data", "profile", "encoder", "pool_size", "test_size", "budget",
                                         "batch", "initial", "profile_settings")},
               **summary, "results": [os.path.join(f"seed-{r['seed']}", "result.json") for r in results]}
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    plot_bands(os.path.join(out, "curve.png"), summary,
               f"{first['dataset']} pool {first['pool_size']}, {first['encoder']}, {first['profile']}, "
               f"seeds {','.join(map(str, summary['seeds']))}")
    return summary


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m mlcore.bench_report DIR  (DIR/seed-N/result.json from --seeds)")
    paths = sorted(glob.glob(os.path.join(argv[0], "seed-*", "result.json")))
    if not paths:
        raise SystemExit(f"no seed-N/result.json under {argv[0]}")
    results = []
    for path in paths:
        with open(path) as fh:
            results.append(json.load(fh))
    return write_summary(argv[0], sorted(results, key=lambda r: r["seed"]))


if __name__ == "__main__":
    main()
