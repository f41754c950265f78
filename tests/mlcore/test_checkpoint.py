import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mlcore import checkpoint
from mlcore.checkpoint import load_checkpoint, save_checkpoint
from mlcore.config import EncoderConfig, LearnerConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_roundtrip_config_state_arrays(tmp_path):
    cfg = LearnerConfig(encoder=EncoderConfig(widths=(8, 16), input_size=20), seed=7)
    state = {"encoder": {"w": torch.randn(3, 4)}}
    p = tmp_path / "a.ckpt"
    save_checkpoint(str(p), cfg, state, {"emb": np.ones((2, 3), np.float32)}, {"round": 3})
    ck = load_checkpoint(str(p))
    assert ck["config"] == cfg and isinstance(ck["config"].encoder.widths, tuple)
    assert torch.equal(ck["state"]["encoder"]["w"], state["encoder"]["w"])
    assert ck["arrays"]["emb"].shape == (2, 3) and ck["meta"] == {"round": 3}
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_crash_between_write_and_replace_keeps_old(tmp_path, monkeypatch):
    p = str(tmp_path / "m.ckpt")
    save_checkpoint(p, LearnerConfig(seed=1), {"m": {"x": torch.zeros(2)}})

    def crash(src, dst):
        raise KeyboardInterrupt("killed before rename")

    monkeypatch.setattr(checkpoint.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(p, LearnerConfig(seed=2), {"m": {"x": torch.ones(2)}})
    monkeypatch.undo()
    ck = load_checkpoint(p)
    assert ck["config"].seed == 1 and torch.equal(ck["state"]["m"]["x"], torch.zeros(2))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


WRITER = r"""
import sys, torch
sys.path.insert(0, sys.argv[2])
from mlcore.checkpoint import save_checkpoint
from mlcore.config import LearnerConfig
big = {"m": {"x": torch.randn(16_000_000)}}  # 64 MB: the write takes a while
print("ready", flush=True)
i = 2
while True:
    save_checkpoint(sys.argv[1], LearnerConfig(seed=i), big)
    i += 1
"""


def test_kill_during_write_leaves_loadable_checkpoint(tmp_path):
    p = str(tmp_path / "k.ckpt")
    save_checkpoint(p, LearnerConfig(seed=1), {"m": {"x": torch.zeros(3)}})
    proc = subprocess.Popen([sys.executable, "-c", WRITER, p, ROOT], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    # wait until a temporary file exists, i.e. the child is mid-write
    deadline = time.time() + 20
    while time.time() < deadline and not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ck = load_checkpoint(p)  # old (seed 1) or a complete new one, never a torn file
    x = ck["state"]["m"]["x"]
    assert (ck["config"].seed == 1 and x.numel() == 3) or x.numel() == 16_000_000


def test_plain_state_dict_loads_weights_only(tmp_path):
    p = str(tmp_path / "plain.pt")
    torch.save({"conv.weight": torch.ones(1)}, p)
    ck = load_checkpoint(p)
    assert ck["config"] is None and "conv.weight" in ck["state"]["model"]
