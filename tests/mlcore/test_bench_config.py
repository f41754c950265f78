"""One configuration source: the benchmark's learner config is the app's
(modelloop.bridge.new_config and mlcore.bench both call presets.app_config); a profile
changes only the slow path's fixed step count."""

import dataclasses

import pytest
import torch

from annotator.modelloop.bridge import new_config
from mlcore.bench import PROFILES, bench_config, parse_args
from mlcore.presets import TYPICAL_LABELS_PER_CLASS


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.parametrize("classes, side, channels", [(10, 28, 1), (10, 8, 1), (4, 224, 3), (3, 32, 3)])
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_bench_config_is_the_apps(settings, classes, side, channels, profile):
    settings.TRAINER_SEED = 7
    settings.TRAINER_PRETRAIN_EPOCHS = 0
    cpu = torch.device("cpu")
    app = dataclasses.asdict(new_config(classes, side, channels, cpu))
    prof = PROFILES[profile]
    bench, overrides = bench_config(classes, side, channels, prof, cpu, 7, parse_args([]))
    bench = dataclasses.asdict(bench)
    assert overrides == {}
    differ = {k for k, v in _flat(bench).items() if _flat(app)[k] != v}
    assert differ <= {"finetune.steps"}
    assert bench["finetune"]["steps"] == prof.slow_steps
    assert bench["acquisition"]["cold_start_until"] == TYPICAL_LABELS_PER_CLASS * classes
    assert bench["encoder"]["flip"] is (channels == 3)


def test_command_line_overrides_are_named(settings):
    args = parse_args(["--finetune-mode", "adapters", "--pretrain-method", "byol"])
    cfg, overrides = bench_config(10, 28, 1, PROFILES["quick"], torch.device("cpu"), 0, args)
    assert overrides == {"finetune_mode": "adapters", "pretrain_method": "byol"}
    assert cfg.encoder.adapters and cfg.finetune.mode == "adapters" and cfg.pretrain.method == "byol"


def test_seeds_option():
    assert parse_args(["--seeds", "0,1,2"]).seed_list == [0, 1, 2]
    assert parse_args(["--seed", "4"]).seed_list == [4]
    assert parse_args(["--strategy", "random"]).strategies == ["random"]
    for bad in ("0,0", "a,b", ","):
        with pytest.raises(SystemExit):
            parse_args(["--seeds", bad])
