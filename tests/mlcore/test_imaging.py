import io

import numpy as np
import pytest
import torch
from PIL import Image

from mlcore import imaging
from mlcore.imaging import (
    ImageFileDataset,
    default_workers,
    embed_files,
    iter_embed_files,
    load_image,
    prepare,
    stream_batches,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def normalised(rgb):
    """(3,) the value prepare gives a pixel of colour rgb (0-255)."""
    return (torch.tensor(rgb, dtype=torch.float32) / 255 - torch.tensor(MEAN)) / torch.tensor(STD)


def reference(image, size, crop_ratio=0.875):
    """The same transform written out by hand with PIL: short side -> round(size / ratio), centre crop."""
    w, h = image.size
    short = round(size / crop_ratio)
    nw, nh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    im = image.convert("RGB").resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = int(round((nw - size) / 2)), int(round((nh - size) / 2))
    a = np.asarray(im.crop((left, top, left + size, top + size)), np.float32) / 255  # (S, S, 3)
    return (torch.from_numpy(a).permute(2, 0, 1) - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def bands(w, h, vertical=True):
    """Thirds red / green / blue, left to right (vertical=True) or top to bottom."""
    a = np.zeros((h, w, 3), np.uint8)
    n = w if vertical else h
    for k, colour in enumerate((RED, GREEN, BLUE)):
        sl = slice(k * n // 3, (k + 1) * n // 3)
        if vertical:
            a[:, sl] = colour
        else:
            a[sl, :] = colour
    return Image.fromarray(a)


@pytest.mark.parametrize("vertical", [True, False])
def test_crop_keeps_centre_without_squashing(vertical):
    img = bands(300, 100) if vertical else bands(100, 300, vertical=False)
    x = prepare(img, 64, MEAN, STD)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    green = normalised(GREEN)
    # the centre and all four corners come from the middle band (a squash would put red/blue there)
    for r, c in [(32, 32), (0, 0), (0, 63), (63, 0), (63, 63)]:
        torch.testing.assert_close(x[:, r, c], green, atol=0.02, rtol=0)
    torch.testing.assert_close(x, reference(img, 64), atol=1e-5, rtol=0)
    squashed = img.resize((64, 64), Image.Resampling.BICUBIC)
    assert np.asarray(squashed)[0, 0].tolist() != list(GREEN)


def test_matches_torchvision_eval_transform():
    from torchvision import transforms as T

    rng = np.random.default_rng(0)
    tf = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize(MEAN, STD)])
    for w, h in [(640, 480), (333, 517), (224, 224), (1000, 301)]:
        img = Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
        torch.testing.assert_close(prepare(img, 224, MEAN, STD), tf(img), atol=1e-5, rtol=0)
    # crop_ratio 1: the shorter side is the crop size; small images are upsampled
    small = Image.fromarray(rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8))
    torch.testing.assert_close(prepare(small, 32, MEAN, STD, crop_ratio=1.0), reference(small, 32, 1.0),
                               atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        prepare(small, 32, MEAN, STD, crop_ratio=1.5)


def test_modes_become_rgb():
    gray = Image.fromarray(np.tile(np.arange(0, 200, 2, dtype=np.uint8), (80, 1)), "L")
    x = prepare(gray, 32, MEAN, STD)
    assert x.shape == (3, 32, 32)
    raw = x * torch.tensor(STD)[:, None, None] + torch.tensor(MEAN)[:, None, None]  # back to [0, 1]
    torch.testing.assert_close(raw[0], raw[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(raw[1], raw[2], atol=1e-6, rtol=0)

    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = (255, 0, 0, 255)  # opaque red on the left, fully transparent on the right
    x = prepare(Image.fromarray(rgba, "RGBA"), 32, MEAN, STD, crop_ratio=1.0)
    assert x.shape == (3, 32, 32)
    torch.testing.assert_close(x[:, 16, 2], normalised(RED), atol=1e-5, rtol=0)
    torch.testing.assert_close(x[:, 16, 30], normalised((255, 255, 255)), atol=1e-5, rtol=0)  # on white

    pal = bands(60, 60).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    x = prepare(pal, 30, MEAN, STD, crop_ratio=1.0)
    assert x.shape == (3, 30, 30)
    torch.testing.assert_close(x[:, 15, 15], normalised(GREEN), atol=1e-5, rtol=0)

    deep = Image.fromarray(np.full((30, 30), 65535, np.uint16))  # 16-bit grayscale: white
    torch.testing.assert_close(prepare(deep, 16, MEAN, STD)[:, 8, 8], normalised((255, 255, 255)),
                               atol=1e-5, rtol=0)
    for mode in ("1", "CMYK", "LA"):
        assert prepare(bands(50, 40).convert(mode), 16, MEAN, STD).shape == (3, 16, 16)


def test_exif_orientation_applied(tmp_path):
    a = np.zeros((60, 120, 3), np.uint8)  # stored landscape: red left half, blue right half
    a[:, :60] = RED
    a[:, 60:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rot.jpg"
    Image.fromarray(a).save(path, "JPEG", quality=95, exif=exif.tobytes())
    with Image.open(path) as im:
        x = prepare(im, 32, MEAN, STD)
        stored = np.asarray(im.convert("RGB"))
    # displayed portrait: the stored left (red) is now on top
    assert x.shape == (3, 32, 32)
    red, blue = normalised(RED), normalised(BLUE)
    assert (x[:, 2, 16] - red).abs().max() < 0.3 and (x[:, 29, 16] - blue).abs().max() < 0.3
    upright = Image.fromarray(np.ascontiguousarray(np.rot90(stored, k=-1)))  # (120, 60): clockwise
    torch.testing.assert_close(x, reference(upright, 32), atol=1e-5, rtol=0)
    torch.testing.assert_close(load_image(path, 32, MEAN, STD), x, atol=1e-5, rtol=0)


def test_jpeg_draft_decoding_close_to_full_decode(tmp_path):
    yy, xx = np.mgrid[0:900, 0:1200]
    a = np.stack([xx * 255 // 1200, yy * 255 // 900, (xx + yy) * 255 // 2100], -1).astype(np.uint8)
    path = tmp_path / "big.jpg"
    Image.fromarray(a).save(path, "JPEG", quality=90)
    fast = load_image(path, 64, MEAN, STD)  # decoded at 1/8 scale: 150 x 113
    full = load_image(path, 64, MEAN, STD, draft=False)
    assert fast.shape == full.shape == (3, 64, 64)
    assert (fast - full).abs().mean() < 0.02


def _files(tmp_path, n=9):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        w, h = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_dataloader_with_workers_matches_prepare_in_order(tmp_path):
    paths = _files(tmp_path)
    want = torch.stack([prepare(Image.open(p), 24, MEAN, STD) for p in paths])  # (9, 3, 24, 24)
    xs, idx, oks = [], [], []
    for x, i, ok in stream_batches(paths, 24, MEAN, STD, batch_size=4, workers=2):
        assert x.shape[1:] == (3, 24, 24) and x.shape[0] == i.shape[0] == ok.shape[0] <= 4
        xs.append(x), idx.append(i), oks.append(ok)
    assert torch.cat(idx).tolist() == list(range(9)) and torch.cat(oks).all()
    torch.testing.assert_close(torch.cat(xs), want, atol=0, rtol=0)
    assert list(stream_batches([], 24, MEAN, STD)) == []


def test_corrupt_file_flagged_not_fatal(tmp_path):
    paths = _files(tmp_path, 3)
    (tmp_path / "junk.jpg").write_bytes(b"this is not an image")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:60])
    paths = [paths[0], str(tmp_path / "junk.jpg"), paths[1], str(tmp_path / "cut.png"),
             str(tmp_path / "gone.png"), paths[2]]
    ds = ImageFileDataset(paths, 16, MEAN, STD)
    x, i, ok = ds[1]
    assert i == 1 and ok is False and torch.equal(x, torch.zeros(3, 16, 16))
    assert ds.path(5) == paths[5] and len(ds) == 6
    batches = list(stream_batches(paths, 16, MEAN, STD, batch_size=4, workers=0))
    ok = torch.cat([b[2] for b in batches])
    assert ok.tolist() == [True, False, True, False, False, True]


def test_embed_files_unit_rows_equal_direct_computation(tmp_path):
    paths = _files(tmp_path, 7)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    paths.insert(3, str(tmp_path / "bad.png"))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 7 * 7, 10))
    model.train()
    seen = []
    vectors, failed = embed_files(model, paths, 16, MEAN, STD, batch_size=3, workers=0, progress=seen.append)
    assert vectors.shape == (8, 10) and vectors.dtype == np.float32 and failed.tolist() == [3]
    assert model.training  # mode restored
    assert seen == pytest.approx([3 / 8, 6 / 8, 1.0])
    norms = np.linalg.norm(vectors, axis=1)
    np.testing.assert_allclose(np.delete(norms, 3), 1.0, rtol=1e-5)
    assert not vectors[3].any()
    good = [p for k, p in enumerate(paths) if k != 3]
    with torch.no_grad():
        model.eval()
        direct = model(torch.stack([prepare(Image.open(p), 16, MEAN, STD) for p in good]))  # (7, 10)
    direct = torch.nn.functional.normalize(direct, dim=1).numpy()
    np.testing.assert_allclose(np.delete(vectors, 3, axis=0), direct, atol=1e-5)
    # the batch-by-batch variant: same rows, in order, with the flags
    got = list(iter_embed_files(model, paths, 16, MEAN, STD, batch_size=5, workers=0))
    assert [g[0].tolist() for g in got] == [[0, 1, 2, 3, 4], [5, 6, 7]]
    np.testing.assert_allclose(np.concatenate([g[1] for g in got]), vectors, atol=1e-6)
    assert np.concatenate([g[2] for g in got]).tolist() == [k != 3 for k in range(8)]
    assert torch.is_grad_enabled()
    assert embed_files(model, [], 16, MEAN, STD)[0].shape == (0, 0)


def test_default_workers(monkeypatch):
    for cpus, want in [(None, 0), (1, 0), (2, 1), (3, 2), (64, 4)]:
        monkeypatch.setattr(imaging.os, "cpu_count", lambda c=cpus: c)
        assert default_workers() == want
