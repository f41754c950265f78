"""`manage.py weights list | add NAME FILE | fetch NAME`. Downloads are tested against a local
HTTP server on 127.0.0.1 (never the real network); the failure path against a closed port."""
import dataclasses
import functools
import hashlib
import io
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import CommandError, call_command

from mlcore.encoders import catalog

R18 = catalog.PRETRAINED["resnet18"].weight_files[0]  # resnet18-f37072fd.pth


@pytest.fixture(scope="module")
def random_resnet18(tmp_path_factory):
    """A randomly initialised torchvision resnet18 state dict, as torch.save writes it. Its name
    carries no sha256 prefix."""
    import torch
    import torchvision

    path = tmp_path_factory.mktemp("files") / "my-resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture
def weights_dir(settings, tmp_path, monkeypatch):
    """An empty WEIGHTS_DIR (not created yet), and an empty torch hub cache."""
    settings.WEIGHTS_DIR = tmp_path / "weights"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return settings.WEIGHTS_DIR


def weights(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("weights", *args, stdout=out, stderr=err)
    return out.getvalue()


def files_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- list -----------------------------------------------------------------------------------


def test_list_shows_missing_weights_and_the_folders_searched(weights_dir, tmp_path):
    out = weights("list")
    for name, c in catalog.PRETRAINED.items():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert c.family in line and f"{c.input_size} px" in line and str(c.out_dim) in line
        assert f"missing — add with: manage.py weights add {name} FILE" in line
    assert str(weights_dir) in out
    assert str(tmp_path / "torch-home" / "hub" / "checkpoints") in out
    assert "`auto` takes for colour photos: self-supervised" in out


def test_list_shows_where_weights_were_found(weights_dir, tmp_path):
    weights_dir.mkdir()
    (weights_dir / R18).write_bytes(b"x")
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "dinov2_vits14_pretrain.pth").write_bytes(b"x")
    lines = weights("list").splitlines()
    assert str(weights_dir / R18) in next(line for line in lines if line.startswith("resnet18 "))
    assert str(hub / "dinov2_vits14_pretrain.pth") in next(line for line in lines if line.startswith("dinov2_vits14 "))
    assert "missing" in next(line for line in lines if line.startswith("resnet50 "))
    assert "`auto` takes for colour photos: dinov2_vits14" in "\n".join(lines)


# --- add ------------------------------------------------------------------------------------


def test_add_checks_the_file_and_copies_it_under_the_known_name(weights_dir, random_resnet18):
    out = weights("add", "resnet18", str(random_resnet18))
    assert files_in(weights_dir) == [R18]  # the name find_weights looks for; no temporary file left
    assert (weights_dir / R18).read_bytes() == random_resnet18.read_bytes()
    assert "no sha256 prefix" in out and str(weights_dir / R18) in out
    assert catalog.find_weights("resnet18", catalog.weight_dirs(weights_dir)) == weights_dir / R18
    assert "resnet18-f37072fd.pth" in weights("list")
    # again: the file is replaced, still one
    weights("add", "resnet18", str(random_resnet18))
    assert files_in(weights_dir) == [R18]


def test_add_refuses_another_architectures_file_naming_it(weights_dir, random_resnet18):
    with pytest.raises(CommandError, match=r"my-resnet18.pth holds resnet18 weights .*not resnet50's"):
        weights("add", "resnet50", str(random_resnet18))
    assert files_in(weights_dir) == []


def test_add_refuses_a_file_that_is_not_weights(weights_dir, tmp_path, random_resnet18):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a weight file" * 100)
    with pytest.raises(CommandError, match="garbage.pth: not a readable PyTorch weight file"):
        weights("add", "resnet18", str(garbage))
    torn = tmp_path / "torn.pth"
    torn.write_bytes(random_resnet18.read_bytes()[:100_000])
    with pytest.raises(CommandError, match="torn.pth: not a readable PyTorch weight file"):
        weights("add", "resnet18", str(torn))
    with pytest.raises(CommandError, match="no such file"):
        weights("add", "resnet18", str(tmp_path / "nothing.pth"))
    assert files_in(weights_dir) == []


def test_add_refuses_a_file_whose_name_carries_a_wrong_sha256_prefix(weights_dir, tmp_path, random_resnet18):
    named = tmp_path / R18  # torchvision's name, but not torchvision's file
    shutil.copyfile(random_resnet18, named)
    with pytest.raises(CommandError, match="not f37072fd as its name says"):
        weights("add", "resnet18", str(named))
    assert files_in(weights_dir) == []


def test_add_verifies_a_matching_sha256_prefix(weights_dir, tmp_path, random_resnet18):
    digest = hashlib.sha256(random_resnet18.read_bytes()).hexdigest()
    named = tmp_path / f"resnet18-{digest[:10]}.pth"
    shutil.copyfile(random_resnet18, named)
    out = weights("add", "resnet18", str(named))
    assert f"its sha256 starts with {digest[:10]}" in out
    assert files_in(weights_dir) == [R18]


def test_add_refuses_unknown_names_listing_the_encoders(weights_dir, random_resnet18):
    with pytest.raises(CommandError, match="Unknown encoder 'resnet101'.*resnet18, resnet50"):
        weights("add", "resnet101", str(random_resnet18))
    with pytest.raises(CommandError, match="'self-supervised' needs no weight file"):
        weights("add", "self-supervised", str(random_resnet18))


# --- fetch ----------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served -> (folder, base url)."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_fetch_downloads_checks_and_moves_the_file_in_place(weights_dir, server, random_resnet18):
    folder, base = server
    digest = hashlib.sha256(random_resnet18.read_bytes()).hexdigest()
    served = f"resnet18-{digest[:8]}.pth"  # a hash-in-the-name file, as torchvision publishes them
    shutil.copyfile(random_resnet18, folder / served)
    out = weights("fetch", "resnet18", "--url", base + served)
    assert f"its sha256 starts with {digest[:8]}" in out
    assert files_in(weights_dir) == [R18]
    assert (weights_dir / R18).read_bytes() == random_resnet18.read_bytes()


def test_fetch_takes_the_catalogs_url(weights_dir, server, random_resnet18, monkeypatch):
    """Without --url: url_base + the preferred file name. A name without a hash (DINOv2's)
    gets the layout check alone; here the layout is resnet18's, so dinov2 refuses it."""
    folder, base = server
    monkeypatch.setitem(catalog.PRETRAINED, "resnet18", dataclasses.replace(
        catalog.PRETRAINED["resnet18"], url_base=base, weight_files=("r18.pth",)))
    shutil.copyfile(random_resnet18, folder / "r18.pth")
    out = weights("fetch", "resnet18")
    assert f"Downloaded {base}r18.pth" in out and "no sha256 prefix" in out
    assert files_in(weights_dir) == ["r18.pth"]
    monkeypatch.setitem(catalog.PRETRAINED, "dinov2_vits14", dataclasses.replace(
        catalog.PRETRAINED["dinov2_vits14"], url_base=base, weight_files=("r18.pth",)))
    with pytest.raises(CommandError, match="holds resnet18 weights"):
        weights("fetch", "dinov2_vits14")
    assert files_in(weights_dir) == ["r18.pth"]  # nothing else left behind


def test_fetch_refuses_a_download_whose_sha256_does_not_match_its_name(weights_dir, server, random_resnet18):
    folder, base = server
    shutil.copyfile(random_resnet18, folder / R18)  # torchvision's name, not its file
    with pytest.raises(CommandError, match="not f37072fd as its name says"):
        weights("fetch", "resnet18", "--url", base + R18)
    assert files_in(weights_dir) == []


def test_fetch_fails_cleanly_without_a_server(weights_dir, server):
    _, base = server
    with pytest.raises(CommandError) as refused:
        weights("fetch", "resnet18", "--url", base + "nothing-here.pth")
    assert "HTTP 404" in str(refused.value)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{R18}"
    with pytest.raises(CommandError) as refused:
        weights("fetch", "resnet18", "--url", url)
    message = str(refused.value)
    assert message.startswith(f"Could not download {url}: ")
    assert "refused" in message.lower()
    assert message.endswith("On a machine without internet, download the file elsewhere and run: "
                            "manage.py weights add resnet18 FILE")
    assert files_in(weights_dir) == []  # no partial file


# --- timm and open_clip ---------------------------------------------------------------------


def test_add_takes_timm_safetensors_and_pytorch_files_under_their_known_names(weights_dir, tmp_path):
    import timm
    import torch
    from safetensors.torch import save_file

    sd = timm.create_model("efficientnet_b0.ra_in1k", pretrained=False).state_dict()
    save_file(sd, str(tmp_path / "model.safetensors"))  # the hub's file name
    out = weights("add", "timm/efficientnet_b0", str(tmp_path / "model.safetensors"))
    assert f"{len(sd)} tensors load as timm/efficientnet_b0's weights" in out
    assert files_in(weights_dir) == ["efficientnet_b0.ra_in1k.safetensors"]
    torch.save(sd, tmp_path / "mine.bin")  # a PyTorch file is not named .safetensors
    weights("add", "timm/efficientnet_b0", str(tmp_path / "mine.bin"))
    assert files_in(weights_dir) == ["efficientnet_b0.ra_in1k.pth", "efficientnet_b0.ra_in1k.safetensors"]
    assert catalog.find_weights("timm/efficientnet_b0", catalog.weight_dirs(weights_dir)).name == (
        "efficientnet_b0.ra_in1k.safetensors")
    with pytest.raises(CommandError, match="holds timm/efficientnet_b0 weights .*not timm/convnext_tiny's"):
        weights("add", "timm/convnext_tiny", str(tmp_path / "mine.bin"))


def test_add_takes_an_open_clip_state_dict(weights_dir, tmp_path, monkeypatch):
    import torch

    from tests.tiny_encoders import TINY_CLIP, TINY_CLIP_FILE, register_tiny_clip, tiny_clip_state_dict

    register_tiny_clip(monkeypatch, tmp_path)
    sd = tiny_clip_state_dict()
    torch.save(sd, tmp_path / "open_clip_pytorch_model.bin")
    out = weights("add", TINY_CLIP, str(tmp_path / "open_clip_pytorch_model.bin"))
    assert f"{len(sd)} tensors load as {TINY_CLIP}'s weights" in out
    assert files_in(weights_dir) == [TINY_CLIP_FILE]


def test_encoders_without_their_package_are_listed_as_such_and_not_added(weights_dir, random_resnet18,
                                                                          monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)
    line = next(line for line in weights("list").splitlines() if line.startswith("timm/convnext_tiny "))
    assert "package timm not installed (pip install timm)" in line
    with pytest.raises(CommandError, match="needs the timm package, which is not installed"):
        weights("add", "timm/convnext_tiny", str(random_resnet18))
    with pytest.raises(CommandError, match="needs the timm package"):
        weights("fetch", "timm/convnext_tiny")
    assert files_in(weights_dir) == []


def test_fetch_takes_the_hubs_file_name_and_keeps_it_under_the_models_name(weights_dir, server, monkeypatch):
    """timm publishes every model as model.safetensors: the catalog's URL ends in that name
    and the file is kept under the model's own (the format found by content, not by name)."""
    import timm
    from safetensors.torch import save_file

    folder, base = server
    name = "timm/efficientnet_b0"
    monkeypatch.setitem(catalog.PRETRAINED, name, dataclasses.replace(catalog.PRETRAINED[name], url_base=base))
    assert catalog.PRETRAINED[name].url(catalog.PRETRAINED[name].weight_files[0]) == base + "model.safetensors"
    save_file(timm.create_model("efficientnet_b0", pretrained=False).state_dict(), str(folder / "model.safetensors"))
    out = weights("fetch", name)
    assert f"Downloaded {base}model.safetensors" in out
    assert files_in(weights_dir) == ["efficientnet_b0.ra_in1k.safetensors"]
