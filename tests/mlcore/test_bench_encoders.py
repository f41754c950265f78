"""The benchmark with a pretrained backbone, as the app runs it: a folder of photos of
mixed sizes embedded at native size by a (random) resnet18 from a local file, an
EmbeddingLearner on the vectors, balanced accuracy, and the embedding cache."""

import json
import os

import numpy as np
import pytest


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """3 classes x 20 generated colour photos, sizes 40-130 px, aspect ratios 1:3 to 3:1,
    PNG and JPEG (one RGBA, one grayscale), in DIR/class_name/."""
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    colours = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 210)}
    sizes = set()
    for ci, (name, rgb) in enumerate(colours.items()):
        (root / name).mkdir()
        for i in range(20):
            w, h = int(rng.integers(40, 131)), int(rng.integers(40, 131))
            if i % 5 == 0:
                w, h = max(w, 3 * h // 2), min(h, 45)  # wide panorama
            sizes.add((w, h))
            img = np.clip(np.array(rgb) + rng.normal(0, 35, (h, w, 3)), 0, 255).astype(np.uint8)
            img[: h // 3, : w // 3] = 255 - img[: h // 3, : w // 3]  # a corner patch
            im = Image.fromarray(img)
            if ci == 0 and i == 1:
                im = im.convert("RGBA")
            elif ci == 1 and i == 2:
                im = im.convert("L")
            ext = "jpg" if i % 2 and im.mode == "RGB" else "png"
            im.save(root / name / f"{i:02d}.{ext}")
    assert len(sizes) > 30 and len({round(w / h, 1) for w, h in sizes}) > 10
    return root


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A randomly initialised torchvision resnet18 state dict (stock layout, fc included)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "my-resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def _argv(folder, weights, out, *extra):
    return ["--data", f"folder:{folder}", "--encoder", "resnet18", "--weights", str(weights),
            "--budget", "12", "--batch", "3", "--workers", "0", "--embed-batch", "16", "--out", str(out), *extra]


def test_bench_resnet18_folder_and_cache(photo_folder, resnet18_file, tmp_path, monkeypatch, capsys):
    from mlcore import imaging
    from mlcore.bench import main

    cache = tmp_path / "cache"
    calls = []
    real = imaging.embed_files

    def counting(model, paths, *a, **kw):
        calls.append(len(paths))
        return real(model, paths, *a, **kw)

    monkeypatch.setattr(imaging, "embed_files", counting)
    res = main(_argv(photo_folder, resnet18_file, tmp_path / "out1", "--cache", str(cache)))
    saved = json.loads((tmp_path / "out1" / "result.json").read_text())
    # stratified 20% split of 3 x 20 photos; every path embedded once, in one streamed pass
    assert saved["pool_size"] == 48 and saved["test_size"] == 12
    assert calls == [60]
    assert saved["encoder"] == "resnet18" and saved["classes"] == ["blue", "green", "red"]
    assert saved["embedding"]["dim"] == 512
    assert saved["embedding"]["embedded"] == 60 and saved["embedding"]["cached"] == 0
    assert saved["embedding"]["failed"] == 0
    assert saved["weights"].startswith("my-resnet18.pth:")
    assert saved["cold_start_until"] == 9  # the app's 3 labels per class
    assert saved["pretrain_s"] == 0
    assert [c["labels"] for c in saved["curve"]] == [3, 6, 9, 12]
    for c in saved["curve"]:
        for key in ("accuracy", "balanced_accuracy", "pool_accuracy", "pool_balanced_accuracy"):
            assert 0.0 <= c[key] <= 1.0, (key, c)
    assert set(saved["labels_to_balanced"]) == {"0.90", "0.95", "0.98", "0.99"}
    assert saved["slow_accepted"] == []  # no slow path on a frozen backbone
    assert (tmp_path / "out1" / "curve.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "balanced" in out and "60 embedded, 0 from the cache" in out
    assert len(list(cache.glob("resnet18-*.npz"))) == 1

    # second run, another strategy: every vector from the cache, the embedding never called
    def boom(*a, **kw):
        raise AssertionError("embedded again")

    monkeypatch.setattr(imaging, "embed_files", boom)
    again = main(_argv(photo_folder, resnet18_file, tmp_path / "out2", "--cache", str(cache),
                       "--compare", "random"))
    assert again["embedding"]["embedded"] == 0 and again["embedding"]["cached"] == 60
    assert "0 embedded, 60 from the cache" in capsys.readouterr().out
    for key in ("labels", "accuracy", "balanced_accuracy", "pool_accuracy"):  # same vectors, same curve
        assert [c[key] for c in again["curve"]] == [c[key] for c in res["curve"]], key
    assert [c["labels"] for c in again["compare"]["random"]["curve"]] == [3, 6, 9, 12]

    # other weights under the same file (new size/mtime): a new cache entry, embedded again
    monkeypatch.setattr(imaging, "embed_files", counting)
    st = os.stat(resnet18_file)
    os.utime(resnet18_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = main(_argv(photo_folder, resnet18_file, tmp_path / "out3", "--cache", str(cache)))
    assert third["embedding"]["embedded"] == 60 and calls == [60, 60]
    assert len(list(cache.glob("resnet18-*.npz"))) == 2


def test_bench_pretrained_without_weights_fails_clearly(photo_folder, tmp_path, monkeypatch, capsys):
    from mlcore.bench import main

    monkeypatch.delenv("WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(SystemExit) as exc:
        main(["--data", f"folder:{photo_folder}", "--encoder", "resnet18",
              "--weights-dir", str(tmp_path / "weights"), "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no local weights for the resnet18 encoder" in err
    assert "resnet18-f37072fd.pth" in err
    assert str(tmp_path / "weights") in err and str(tmp_path / "torch-home") in err
    assert "--weights FILE" in err
    assert not (tmp_path / "out").exists()

    with pytest.raises(SystemExit):
        main(["--data", f"folder:{photo_folder}", "--encoder", "resnet18", "--weights",
              str(tmp_path / "missing.pth")])
    assert "missing.pth: no such file" in capsys.readouterr().err


def _naive_balanced(y_true, y_pred):
    recalls = []
    for c in sorted(set(y_true.tolist())):
        idx = [i for i in range(len(y_true)) if y_true[i] == c]
        recalls.append(sum(y_pred[i] == c for i in idx) / len(idx))
    return sum(recalls) / len(recalls)


def test_balanced_accuracy_against_naive_reference():
    from mlcore.bench import balanced_accuracy

    y = np.array([0, 0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 0, 1, 1, 0, 2])
    assert balanced_accuracy(y, p) == pytest.approx((3 / 4 + 1 / 2 + 1) / 3)
    assert (p == y).mean() == pytest.approx(5 / 7)  # plain accuracy differs
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 5, 50)
        y[y == 3] = 4  # a class absent from the truth does not count
        p = rng.integers(0, 6, 50)  # predictions may name classes the truth lacks
        assert balanced_accuracy(y, p) == pytest.approx(_naive_balanced(y, p))


def test_stratified_folder_split(photo_folder):
    from mlcore.data import list_folder

    ptr, ytr, pte, yte, classes = list_folder(str(photo_folder), test_fraction=0.25, seed=3)
    assert classes == ["blue", "green", "red"]
    assert np.bincount(yte).tolist() == [5, 5, 5] and np.bincount(ytr).tolist() == [15, 15, 15]
    assert not set(ptr) & set(pte)
    assert all(os.path.basename(os.path.dirname(p)) == classes[y] for p, y in zip(pte, yte, strict=True))
    assert list_folder(str(photo_folder), 0.25, 3)[2] == pte  # seeded
