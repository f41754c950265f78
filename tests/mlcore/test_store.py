import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mlcore.store import IDS, META, VECTORS, EmbeddingStore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IDENT = {"encoder": "tiny", "weights": "sha256:abc", "generation": 1}
TOL = 2e-3  # float16 of unit-scale values


def unit(n, d, seed=0):
    """(n, d) float32 unit rows."""
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_round_trip(tmp_path):
    st = EmbeddingStore.open(tmp_path / "s", dim=16, **IDENT)
    v = unit(3, 16)
    st.add([5, 3, 9], v)
    assert st.count == 3 and len(st) == 3 and st.dim == 16
    assert st.ids.tolist() == [5, 3, 9] and st.ids.dtype == np.int64
    got = st.get([9, 5])
    assert got.dtype == np.float32 and got.shape == (2, 16)
    np.testing.assert_allclose(got, v[[2, 0]], atol=TOL)
    np.testing.assert_allclose(st.as_array(), v, atol=TOL)
    np.testing.assert_allclose(st.as_array([3, 9, 5, 3]), v[[1, 2, 0, 1]], atol=TOL)
    np.testing.assert_array_equal(st.get([3]), v[[1]].astype(np.float16).astype(np.float32))
    assert 3 in st and 4 not in st
    meta = json.loads((tmp_path / "s" / META).read_text())
    assert meta["dim"] == 16 and meta["count"] == 3 and meta["identity"] == IDENT and meta["created"]
    assert sorted(os.listdir(tmp_path / "s")) == sorted([META, VECTORS, IDS])
    assert st.get([]).shape == (0, 16) and st.missing([]).shape == (0,)


def test_missing_after_restart_embeds_only_new(tmp_path):
    v = unit(150, 8)
    st = EmbeddingStore.open(tmp_path, dim=8, **IDENT)
    st.add(np.arange(100), v[:100])
    del st
    st = EmbeddingStore.open(tmp_path, dim=8, **IDENT)  # "restart"
    new = st.missing(np.arange(150))
    assert new.tolist() == list(range(100, 150))
    st.add(new, v[new])
    st = EmbeddingStore.open(tmp_path, **IDENT)  # dim read from the store
    assert st.missing(np.arange(150)).size == 0 and st.count == 150
    np.testing.assert_allclose(st.get(np.arange(150)[::-1]), v[::-1], atol=TOL)
    assert st.missing([149, 7, 500, 3, 500]).tolist() == [500, 500]


def test_growth_across_capacity(tmp_path):
    st = EmbeddingStore.open(tmp_path, dim=4, initial_capacity=2, **IDENT)
    v = unit(100, 4)
    st.add([0], v[:1])
    assert st.capacity == 2
    st.add(np.arange(1, 4), v[1:4])
    assert st.capacity == 4
    st.add(np.arange(4, 100), v[4:])
    assert st.capacity == 128
    assert os.path.getsize(tmp_path / VECTORS) == 128 * 4 * 2
    st = EmbeddingStore.open(tmp_path)
    assert st.capacity == 128 and st.count == 100
    np.testing.assert_allclose(st.as_array(np.arange(100)), v, atol=TOL)


def test_identity_and_dim_mismatch_refused(tmp_path):
    EmbeddingStore.open(tmp_path, dim=8, **IDENT).add([1], unit(1, 8))
    with pytest.raises(ValueError, match="generation: stored 1, asked 2"):
        EmbeddingStore.open(tmp_path, dim=8, **dict(IDENT, generation=2))
    with pytest.raises(ValueError, match="weights"):
        EmbeddingStore.open(tmp_path, encoder="tiny", generation=1)  # weights forgotten
    with pytest.raises(ValueError, match="holds 8-d vectors, asked for 16-d"):
        EmbeddingStore.open(tmp_path, dim=16, **IDENT)
    with pytest.raises(ValueError, match="pass dim"):
        EmbeddingStore.open(tmp_path / "new", encoder="x")
    with pytest.raises(FileNotFoundError):
        EmbeddingStore.open(tmp_path / "none", readonly=True)
    reader = EmbeddingStore.open(tmp_path, readonly=True)  # no identity: whatever is there
    assert reader.identity == IDENT and reader.count == 1
    with pytest.raises(PermissionError):
        reader.add([2], unit(1, 8))


def test_bad_adds_refused_and_change_nothing(tmp_path):
    st = EmbeddingStore.open(tmp_path, dim=4, **IDENT)
    st.add([1, 2, 3], unit(3, 4))
    with pytest.raises(ValueError, match=r"duplicate ids in one add: 7"):
        st.add([7, 8, 7], unit(3, 4))
    with pytest.raises(ValueError, match=r"already in the embedding store: 2, 3"):
        st.add([2, 9, 3], unit(3, 4))
    with pytest.raises(ValueError, match="shape"):
        st.add([10, 11], unit(3, 4))
    with pytest.raises(ValueError, match="shape"):
        st.add([10], unit(1, 5))
    with pytest.raises(ValueError, match=">= 0"):
        st.add([-4], unit(1, 4))
    with pytest.raises(ValueError, match="finite"):
        st.add([12], np.full((1, 4), 1e6, np.float32))
    with pytest.raises(ValueError, match="integers"):
        st.add([1.5], unit(1, 4))
    with pytest.raises(KeyError, match="ids not in the embedding store: 99, 98"):
        st.get([1, 99, 98])
    for s in (st, EmbeddingStore.open(tmp_path)):
        assert s.ids.tolist() == [1, 2, 3] and s.missing([7, 8, 9, 10, 11, 12]).size == 6


def test_crash_before_commit_keeps_previous_contents(tmp_path, monkeypatch):
    st = EmbeddingStore.open(tmp_path, dim=8, **IDENT)
    a, b = unit(10, 8, seed=1), unit(20, 8, seed=2)
    st.add(np.arange(10), a)

    def crash(src, dst):
        raise KeyboardInterrupt("killed before the rename")

    # vectors and ids of the second batch are written and fsynced, then the commit dies
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        st.add(np.arange(100, 120), b)
    monkeypatch.undo()
    assert os.path.getsize(tmp_path / IDS) == 30 * 8  # the uncommitted ids are on disk...
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]
    for s in (st, EmbeddingStore.open(tmp_path, dim=8, **IDENT)):  # ...and ignored
        assert s.count == 10 and s.ids.tolist() == list(range(10))
        np.testing.assert_allclose(s.as_array(), a, atol=TOL)
        assert s.missing(np.arange(100, 120)).size == 20
    s = EmbeddingStore.open(tmp_path, dim=8, **IDENT)
    s.add(np.arange(100, 105), b[:5])  # overwrites the orphan rows
    s = EmbeddingStore.open(tmp_path)
    assert s.count == 15
    np.testing.assert_allclose(s.get(np.arange(100, 105)), b[:5], atol=TOL)
    np.testing.assert_allclose(s.get(np.arange(10)), a, atol=TOL)


WRITER = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from mlcore.store import EmbeddingStore
st = EmbeddingStore.open(sys.argv[1], dim=32, initial_capacity=4, encoder="k")
print("ready", flush=True)
i = 0
while True:
    ids = np.arange(i, i + 37)
    st.add(ids, np.cos(ids[:, None] * np.arange(1, 33)[None, :] * 0.01))
    i += 37
"""


def test_kill_during_adds_leaves_consistent_store(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), ROOT], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    st = EmbeddingStore.open(tmp_path, encoder="k")
    assert st.count > 0 and st.count % 37 == 0
    ids = st.ids
    assert ids.tolist() == list(range(st.count))
    want = np.cos(ids[:, None] * np.arange(1, 33)[None, :] * 0.01).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(st.as_array(), want)
    st.add([10**9], np.zeros((1, 32)))  # and it stays writable
    assert EmbeddingStore.open(tmp_path).count == len(ids) + 1


def test_agrees_with_dict_reference(tmp_path):
    rng = np.random.default_rng(3)
    st = EmbeddingStore.open(tmp_path, dim=6, initial_capacity=3, **IDENT)
    ref = {}
    for step in range(40):
        cand = rng.choice(500, size=rng.integers(0, 30), replace=False)
        new = st.missing(cand)
        assert sorted(new.tolist()) == sorted(i for i in cand.tolist() if i not in ref)
        v = rng.normal(size=(len(new), 6)).astype(np.float32)
        st.add(new, v)
        ref.update({int(i): x for i, x in zip(new, v)})
        if step % 10 == 9:
            st = EmbeddingStore.open(tmp_path, **IDENT)
        ask = rng.choice(sorted(ref), size=min(len(ref), 25))
        np.testing.assert_allclose(st.get(ask), np.stack([ref[int(i)] for i in ask]), rtol=1e-3, atol=TOL)
    assert st.count == len(ref) and set(st.ids.tolist()) == set(ref)
    order = np.array(sorted(ref), np.int64)[::-1]
    np.testing.assert_allclose(st.as_array(order, chunk=7), np.stack([ref[int(i)] for i in order]),
                               rtol=1e-3, atol=TOL)


def test_remove_missing(tmp_path):
    st = EmbeddingStore.open(tmp_path, dim=4, **IDENT)
    v = unit(10, 4)
    st.add(np.arange(10), v)
    assert st.remove_missing(np.arange(0, 10, 2)) == 5
    assert st.remove_missing(np.arange(0, 10, 2)) == 0
    assert st.ids.tolist() == [0, 2, 4, 6, 8] and st.count == 5
    with pytest.raises(KeyError, match="3"):
        st.get([3])
    st.add([3], v[[3]])  # re-adding a removed id is allowed
    st = EmbeddingStore.open(tmp_path)
    assert st.ids.tolist() == [0, 2, 4, 6, 8, 3] and st.missing(np.arange(10)).tolist() == [1, 5, 7, 9]
    np.testing.assert_allclose(st.as_array(), v[[0, 2, 4, 6, 8, 3]], atol=TOL)
    assert json.loads((tmp_path / META).read_text())["count"] == 6


def test_100k_by_64(tmp_path):
    n, d = 100_000, 64
    v = unit(n, d, seed=5)
    ids = np.random.default_rng(0).permutation(10 * n)[:n]
    t0 = time.perf_counter()
    st = EmbeddingStore.open(tmp_path, dim=d, **IDENT)
    for s in range(0, n, 10_000):
        st.add(ids[s:s + 10_000], v[s:s + 10_000])
    t1 = time.perf_counter()
    st = EmbeddingStore.open(tmp_path, dim=d, **IDENT)
    assert st.missing(ids).size == 0
    perm = np.random.default_rng(1).permutation(n)
    got = st.get(ids[perm])
    t2 = time.perf_counter()
    np.testing.assert_array_equal(got, v[perm].astype(np.float16).astype(np.float32))
    print(f"100k x 64: add {t1 - t0:.2f}s, reopen + missing + shuffled get {t2 - t1:.2f}s")
