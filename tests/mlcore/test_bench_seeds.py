"""The benchmark is repeatable: fixed training steps, so the same seed gives the same curve;
--seeds writes one run per seed and a summary whose mean and sd are those of the runs;
random is always among the compared strategies. Tiny generated 8x8 data, a few steps."""

import gzip
import json
from dataclasses import asdict

import numpy as np
import pytest


def write_shapes_csv(path, per_class=60, seed=0):
    """scikit-learn's digits.csv layout (64 values 0-16, then the class): horizontal bars,
    vertical bars and diagonals at random offsets, with noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(3):
        for _ in range(per_class):
            img = rng.integers(0, 4, (8, 8)).astype(float)
            k = int(rng.integers(1, 7))
            if c == 0:
                img[k, 1:7] = 16
            elif c == 1:
                img[1:7, k] = 16
            else:
                np.fill_diagonal(img[:, max(0, k - 3):], 16)
            rows.append(",".join(str(int(v)) for v in img.ravel()) + f",{c}")
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(rows) + "\n")
    return path


ARGS = ["--pretrain-steps", "3", "--slow-steps", "3", "--budget", "30", "--batch", "10"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, monkeypatch_module):
    from mlcore.bench import main

    monkeypatch_module.setenv("MLCORE_THREADS", "1")
    root = tmp_path_factory.mktemp("bench")
    data = f"digits:{write_shapes_csv(root / 'shapes.csv.gz')}"
    seeds = main(["--data", data, *ARGS, "--seeds", "0,1", "--out", str(root / "seeds")])
    single = main(["--data", data, *ARGS, "--seed", "0", "--out", str(root / "single")])
    return root, seeds, single


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _curve(run):
    """The computed part of a curve (timings left out)."""
    return [(c["labels"], c["accuracy"], c["balanced_accuracy"], c["pool_accuracy"]) for c in run["curve"]]


def test_same_seed_gives_the_same_curves(runs):
    root, seeds, single = runs
    again = json.loads((root / "seeds" / "seed-0" / "result.json").read_text())
    assert again["pretrain_steps"] == single["pretrain_steps"] == 3
    assert _curve(again) == _curve(single)
    assert _curve(again["compare"]["random"]) == _curve(single["compare"]["random"])


def test_other_seed_gives_other_curves(runs):
    _, seeds, _ = runs
    first, second = seeds["results"]
    assert (first["seed"], second["seed"]) == (0, 1)
    assert _curve(first) != _curve(second)


def test_random_is_compared_without_asking(runs):
    _, seeds, single = runs
    assert seeds["strategies"] == ["auto", "random"]
    assert list(single["compare"]) == ["random"]


def test_compared_strategies(capsys):
    from mlcore.bench import compared_strategies

    assert compared_strategies("random", "", False) == ["random"]
    assert compared_strategies("auto", "margin,random,auto", False) == ["auto", "margin", "random"]
    assert compared_strategies("bald", "margin", False) == ["bald", "margin", "random"]
    assert capsys.readouterr().out == ""
    assert compared_strategies("auto", "", True) == ["auto"]
    assert "no random baseline" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        compared_strategies("auto", "nonsense", False)


def test_summary_is_the_mean_and_sd_of_the_seeds(runs):
    root, _, _ = runs
    summary = json.loads((root / "seeds" / "summary.json").read_text())
    results = [json.loads((root / "seeds" / p).read_text()) for p in summary["results"]]
    assert summary["seeds"] == [0, 1]
    for s in ("auto", "random"):
        curves = [r["curve"] if s == r["strategy"] else r["compare"][s]["curve"] for r in results]
        assert [row["labels"] for row in summary["curves"][s]] == [10, 20, 30]
        for i, row in enumerate(summary["curves"][s]):
            for key in ("accuracy", "balanced_accuracy"):
                a, b = curves[0][i][key], curves[1][i][key]
                mean = (a + b) / 2
                sd = (((a - mean) ** 2 + (b - mean) ** 2) / (2 - 1)) ** 0.5  # sample sd
                assert row[f"{key}_mean"] == pytest.approx(mean, abs=1e-5)
                assert row[f"{key}_sd"] == pytest.approx(sd, abs=1e-5)
        assert summary["labels_to"][s]["0.90"] == [
            r["labels_to"]["0.90"] if s == r["strategy"] else r["compare"][s]["labels_to"]["0.90"] for r in results]
    for i, row in enumerate(summary["difference"]["auto-random"]):
        d = [r["curve"][i]["accuracy"] - r["compare"]["random"]["curve"][i]["accuracy"] for r in results]
        assert row["accuracy_mean"] == pytest.approx(np.mean(d), abs=1e-5)
        assert row["accuracy_sd"] == pytest.approx(np.std(d, ddof=1), abs=1e-5)


def test_files_per_seed_and_the_banded_plot(runs, capsys):
    root, _, _ = runs
    for name in ("seed-0/result.json", "seed-0/curve.png", "seed-1/result.json", "seed-1/curve.png",
                 "summary.json", "curve.png"):
        assert (root / "seeds" / name).stat().st_size > 100, name
    assert not (root / "seeds" / "result.json").exists()
    assert (root / "single" / "result.json").exists() and (root / "single" / "curve.png").exists()


def test_summary_table_puts_strategies_side_by_side():
    from mlcore.bench_report import summary_table

    summary = {"seeds": [0, 1, 2], "strategies": ["auto", "random"],
               "curves": {"auto": [{"labels": 20, "accuracy_mean": 0.9, "accuracy_sd": 0.01}],
                          "random": [{"labels": 20, "accuracy_mean": 0.8, "accuracy_sd": 0.02}]},
               "difference": {"auto-random": [{"labels": 20, "accuracy_mean": 0.1, "accuracy_sd": 0.015}]},
               "labels_to": {s: {t: [None, 20, None] for t in ("0.90", "0.95", "0.98", "0.99")}
                             for s in ("auto", "random")}}
    lines = summary_table(summary).splitlines()
    assert "mean ± sd over seeds 0, 1, 2" in lines[0]
    assert lines[1].split() == ["labels", "auto", "random", "auto", "−", "random", "(pts)"]
    assert lines[2].split() == ["20", "90.0", "±", "1.0", "80.0", "±", "2.0", "+10.0", "±", "1.5"]


def test_the_run_records_the_apps_config(runs):
    from mlcore.bench import PROFILES
    from mlcore.presets import app_config

    _, seeds, _ = runs
    r = seeds["results"][1]
    expected = app_config(3, 8, 1, gpu=False, seed=1)
    expected.finetune.steps = 3  # --slow-steps: the profile's fixed slow-path work
    assert json.loads(json.dumps(r["config"])) == json.loads(json.dumps(asdict(expected)))
    assert r["config_overrides"] == {}
    assert r["profile_settings"]["pretrain_steps"] == 3
    assert PROFILES["quick"].pretrain_steps == 3900


def test_seeds_in_parallel_processes_give_the_same_curves(runs):
    from mlcore.bench import main

    root, seeds, _ = runs
    data = f"digits:{root / 'shapes.csv.gz'}"
    parallel = main(["--data", data, *ARGS, "--seeds", "0,1", "--jobs", "2", "--out", str(root / "jobs")])
    for one, other in zip(seeds["results"], parallel["results"]):
        assert one["seed"] == other["seed"]
        assert _curve(one) == _curve(other)
        assert _curve(one["compare"]["random"]) == _curve(other["compare"]["random"])


def test_the_summary_can_be_written_again_from_the_seed_results(runs, tmp_path, capsys):
    import shutil

    from mlcore.bench_report import main as report

    root, _, _ = runs
    copy = tmp_path / "again"
    shutil.copytree(root / "seeds", copy)
    (copy / "summary.json").unlink()
    (copy / "curve.png").unlink()
    report([str(copy)])
    assert json.loads((copy / "summary.json").read_text()) == json.loads((root / "seeds" / "summary.json").read_text())
    assert (copy / "curve.png").stat().st_size > 0
    assert "auto − random" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no seed-N/result.json"):
        report([str(tmp_path)])
