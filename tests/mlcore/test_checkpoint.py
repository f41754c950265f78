import os
import signal
import subprocess
import sys

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
    assert not temporaries(tmp_path)


def temporaries(folder):
    """The writer's temporary files (``atomic_write``: ``.tmp-*.part`` next to the target)."""
    return [f for f in os.listdir(folder) if f.startswith(".tmp-") and f.endswith(".part")]


def test_the_temporaries_check_sees_the_writers_files(tmp_path):
    """The leftover check above would pass vacuously if it looked for the wrong name."""
    import tempfile

    fd, _ = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=tmp_path)  # what atomic_write makes
    os.close(fd)
    assert len(temporaries(tmp_path)) == 1


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
    assert not temporaries(tmp_path)


# A writer that SIGKILLs itself at one chosen step of ``atomic_write``: deterministic crash
# injection (the kill lands exactly there, no sleeps), the same signal a crash or the OOM
# killer sends (no ``finally`` runs).
WRITER = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[3])
import torch
from mlcore import checkpoint
from mlcore.config import LearnerConfig

path, step = sys.argv[1], sys.argv[2]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
real_fsync, real_replace, real_save = os.fsync, os.replace, torch.save
if step == "mid-write":  # half the payload is in the temporary file
    def save(obj, fh):
        fh.write(b"PK\x03\x04" + b"\0" * 4096)
        fh.flush()
        die()
    checkpoint.torch.save = save
elif step == "before-fsync":
    checkpoint.os.fsync = lambda fd: die()
elif step == "before-rename":
    checkpoint.os.replace = lambda a, b: die()
elif step == "after-rename":  # the new file is in place, the folder not yet fsynced
    def replace(a, b):
        real_replace(a, b)
        die()
    checkpoint.os.replace = replace
checkpoint.save_checkpoint(path, LearnerConfig(seed=2), {"m": {"x": torch.ones(5)}})
"""


@pytest.mark.parametrize("step, new", [("mid-write", False), ("before-fsync", False), ("before-rename", False),
                                       ("after-rename", True)])
def test_a_kill_at_each_step_of_a_write_leaves_the_old_or_the_new_checkpoint(tmp_path, step, new):
    p = str(tmp_path / "k.ckpt")
    save_checkpoint(p, LearnerConfig(seed=1), {"m": {"x": torch.zeros(3)}})
    proc = subprocess.run([sys.executable, "-c", WRITER, p, step, ROOT], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]  # the kill landed there
    ck = load_checkpoint(p)
    if new:
        assert ck["config"].seed == 2 and torch.equal(ck["state"]["m"]["x"], torch.ones(5))
        assert not temporaries(tmp_path)
    else:
        assert ck["config"].seed == 1 and torch.equal(ck["state"]["m"]["x"], torch.zeros(3))
        assert len(temporaries(tmp_path)) == 1  # the killed write's leftover, never read
    save_checkpoint(p, LearnerConfig(seed=3), {"m": {"x": torch.ones(2)}})  # the next write works
    assert load_checkpoint(p)["config"].seed == 3


def test_plain_state_dict_loads_weights_only(tmp_path):
    p = str(tmp_path / "plain.pt")
    torch.save({"conv.weight": torch.ones(1)}, p)
    ck = load_checkpoint(p)
    assert ck["config"] is None and "conv.weight" in ck["state"]["model"]
