"""Encoder registry: specs, strict local loading per family, recognise, find_weights."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import nn

from mlcore.config import EncoderConfig
from mlcore.encoders import registry as reg
from mlcore.encoders.dinov2 import DinoV2

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

# name: (family, input_size, out_dim, known files) -- file names as in torchvision's Weights
# urls (torchvision 0.29 source) and the DINOv2 hub (dinov2/hub/backbones.py)
EXPECTED = {
    "small_cnn": ("selfsup", None, 128, ()),
    "resnet18_small": ("selfsup", None, 512, ()),
    "resnet18": ("torchvision", 224, 512, ("resnet18-f37072fd.pth",)),
    "resnet50": ("torchvision", 224, 2048, ("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth")),
    "convnext_tiny": ("torchvision", 224, 768, ("convnext_tiny-983f1562.pth",)),
    "vit_b_16": ("torchvision", 224, 768, ("vit_b_16-c867db91.pth",)),
    "dinov2_vits14": ("dinov2", 224, 384, ("dinov2_vits14_pretrain.pth",)),
    "dinov2_vitb14": ("dinov2", 224, 768, ("dinov2_vitb14_pretrain.pth",)),
}


def test_specs():
    # timm and open_clip: tests/mlcore/test_encoders_timm_open_clip.py
    assert set(reg.names()) - set(reg.names("timm")) - set(reg.names("open_clip")) == set(EXPECTED)
    for name, (family, size, dim, files) in EXPECTED.items():
        s = reg.get(name)
        assert (s.family, s.input_size, s.out_dim, s.weight_files) == (family, size, dim, files)
        if family == "selfsup":
            assert s.channels is None and s.mean is None and not s.pretrained
        else:
            assert s.channels == 3 and (s.mean, s.std) == IMAGENET and s.pretrained
    assert reg.names("dinov2") == ["dinov2_vits14", "dinov2_vitb14"]
    with pytest.raises(KeyError, match="resnet18"):
        reg.get("resnet19")


def _reference(name):
    """torchvision model with its head removed by hand: the features we must reproduce."""
    m = getattr(tvm, name)(weights=None)
    if name.startswith("resnet"):
        m.fc = nn.Identity()
    elif name == "convnext_tiny":
        m.classifier = nn.Sequential(*list(m.classifier)[:-1])  # LayerNorm2d, Flatten
    else:
        m.heads = nn.Identity()
    return m


# (name, batch, input size): vit_b_16 only takes 224 px; the others run small for speed
@pytest.mark.parametrize("name,batch,size", [("resnet18", 2, 64), ("resnet50", 1, 64),
                                             ("convnext_tiny", 1, 64), ("vit_b_16", 1, 224)])
def test_torchvision_stock_file_loads_and_matches_torchvision(tmp_path, name, batch, size):
    stock = getattr(tvm, name)(weights=None)
    sd = stock.state_dict()
    path = tmp_path / f"{name}.pth"
    torch.save(sd, path)
    model = reg.get(name).build(path)
    ref = _reference(name)
    ref.load_state_dict({k: v for k, v in sd.items() if k in ref.state_dict()})
    ref.eval()
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (batch, reg.get(name).out_dim)
        torch.testing.assert_close(out, ref(x), rtol=0, atol=0)
    # a DataParallel-style file loads the same
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    wrapped = reg.get(name).build(path)
    assert all(torch.equal(a, b) for a, b in zip(wrapped.state_dict().values(), model.state_dict().values()))


def test_head_with_other_classes_is_ignored_but_backbone_is_strict(tmp_path):
    sd = tvm.resnet18(weights=None, num_classes=10).state_dict()
    torch.save(sd, tmp_path / "r18.pth")
    model = reg.get("resnet18").build(tmp_path / "r18.pth")
    assert torch.equal(model.state_dict()["layer4.1.bn2.weight"], sd["layer4.1.bn2.weight"])
    del sd["layer4.1.bn2.weight"]
    torch.save(sd, tmp_path / "r18.pth")
    with pytest.raises(ValueError, match=r"r18\.pth.*1 missing: layer4\.1\.bn2\.weight"):
        reg.get("resnet18").build(tmp_path / "r18.pth")


# official DINOv2 hub layout (dinov2/models/vision_transformer.py, dinov2/layers/*), by hand
DINOV2_S_KEYS = {
    "cls_token": (1, 1, 384), "pos_embed": (1, 1 + 37 * 37, 384), "mask_token": (1, 384),
    "patch_embed.proj.weight": (384, 3, 14, 14), "patch_embed.proj.bias": (384,),
    "blocks.0.norm1.weight": (384,), "blocks.0.attn.qkv.weight": (1152, 384), "blocks.0.attn.qkv.bias": (1152,),
    "blocks.0.attn.proj.weight": (384, 384), "blocks.0.ls1.gamma": (384,), "blocks.0.norm2.bias": (384,),
    "blocks.0.mlp.fc1.weight": (1536, 384), "blocks.0.mlp.fc2.weight": (384, 1536), "blocks.11.ls2.gamma": (384,),
    "norm.weight": (384,), "norm.bias": (384,),
}


def test_dinov2_layout_matches_official_hub_checkpoints():
    s = {k: tuple(v.shape) for k, v in DinoV2(384, 12, 6).state_dict().items()}
    assert len(s) == 5 + 12 * 14 + 2 == 175  # 14 tensors per block
    assert {k: s[k] for k in DINOV2_S_KEYS} == DINOV2_S_KEYS
    assert not any(k.startswith(("head", "register_tokens", "blocks.0.0.")) for k in s)
    b = reg.stock_shapes("dinov2_vitb14")
    assert len(b) == 175 and b["pos_embed"] == (1, 1370, 768) and b["blocks.11.attn.qkv.weight"] == (2304, 768)
    assert b["blocks.0.mlp.fc1.weight"] == (3072, 768)


def _dinov2_reference(sd, x, heads):
    """Independent forward from the raw state dict: nn.MultiheadAttention takes the fused
    qkv/proj weights as in_proj/out_proj. x: (B, 3, 518, 518) (training grid, no interpolation)."""
    dim = sd["norm.weight"].shape[0]
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=14)
    t = torch.cat([sd["cls_token"].expand(len(x), -1, -1), t.flatten(2).transpose(1, 2)], 1) + sd["pos_embed"]
    mha = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    for i in range(12):
        p = f"blocks.{i}."
        mha.in_proj_weight.data, mha.in_proj_bias.data = sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]
        mha.out_proj.weight.data, mha.out_proj.bias.data = sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"]
        h = F.layer_norm(t, (dim,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
        t = t + sd[p + "ls1.gamma"] * mha(h, h, h, need_weights=False)[0]
        h = F.layer_norm(t, (dim,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
        h = F.linear(F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
                     sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        t = t + sd[p + "ls2.gamma"] * h
    return F.layer_norm(t, (dim,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)[:, 0]


def test_dinov2_loads_hub_layout_file_and_matches_reference(tmp_path):
    src = DinoV2(384, 12, 6)
    with torch.no_grad():  # trained-like LayerScale, so the blocks matter
        for blk in src.blocks:
            blk.ls1.gamma.uniform_(0.5, 1.5)
            blk.ls2.gamma.uniform_(0.5, 1.5)
    sd = src.state_dict()
    torch.save(sd, tmp_path / "dinov2_vits14_pretrain.pth")
    model = reg.get("dinov2_vits14").build(tmp_path / "dinov2_vits14_pretrain.pth")
    with torch.no_grad():
        x = torch.randn(1, 3, 518, 518)
        torch.testing.assert_close(model(x), _dinov2_reference(sd, x, heads=6), rtol=1e-4, atol=1e-4)
        out = model(torch.randn(2, 3, 224, 224))  # 16x16 patches, interpolated positions
        assert out.shape == (2, 384) and torch.isfinite(out).all()
        pos = model.pos_embed_for(16, 16)
        assert pos.shape == (1, 257, 384) and torch.equal(pos[:, 0], sd["pos_embed"][:, 0])
        assert model.pos_embed_for(37, 37) is model.pos_embed
    with pytest.raises(ValueError, match="multiple of 14"):
        model(torch.randn(1, 3, 100, 100))


def _meta_sd(name):
    with torch.device("meta"):
        return getattr(tvm, name)(weights=None).state_dict()


def test_recognise_stock_state_dicts():
    sd = tvm.resnet18(weights=None).state_dict()
    assert len(sd) == 122  # weights, biases, BN running stats and num_batches_tracked
    assert reg.recognise(sd) == ("resnet18", 122, 122)
    assert reg.recognise({f"module.{k}": v for k, v in sd.items()}) == ("resnet18", 122, 122)
    assert reg.recognise({"state_dict": {f"model.{k}": v for k, v in sd.items()}}) == ("resnet18", 122, 122)
    assert reg.recognise(tvm.resnet18(weights=None, num_classes=10).state_dict()) == ("resnet18", 120, 122)
    for name, n in (("resnet50", 320), ("convnext_tiny", 182), ("vit_b_16", 152)):
        msd = _meta_sd(name)
        assert reg.recognise(msd) == (name, n, n)
        assert reg.recognise({f"module.{k}": v for k, v in msd.items()}) == (name, n, n)
    with torch.device("meta"):
        dsd = DinoV2(384, 12, 6).state_dict()
    assert reg.recognise(dsd) == ("dinov2_vits14", 175, 175)
    assert reg.recognise({f"module.{k}": v for k, v in dsd.items()}) == ("dinov2_vits14", 175, 175)
    # a DINO training checkpoint: the teacher's backbone next to its projection heads
    teacher = {**{f"backbone.{k}": v for k, v in dsd.items()}, "dino_head.last_layer.weight": torch.zeros(4, 4)}
    assert reg.recognise({"teacher": teacher}) == ("dinov2_vits14", 175, 175)


def test_recognise_garbage_is_none():
    assert reg.recognise({}) is None
    assert reg.recognise({"a": torch.zeros(3), "b": torch.zeros(2, 2)}) is None
    assert reg.recognise({"fc.weight": torch.zeros(1000, 512), "x": torch.zeros(5), "y": torch.zeros(6)}) is None
    assert reg.recognise([torch.zeros(3)]) is None and reg.recognise(None) is None


def test_bad_files_raise_value_error_with_file_name(tmp_path):
    good = tmp_path / "resnet18-f37072fd.pth"
    torch.save(tvm.resnet18(weights=None).state_dict(), good)
    torn = tmp_path / "torn.pth"
    torn.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"torn\.pth: not a readable PyTorch weight file"):
        reg.get("resnet18").build(torn)
    (tmp_path / "notes.pth").write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.pth"):
        reg.get("resnet18").build(tmp_path / "notes.pth")
    with pytest.raises(ValueError, match=r"resnet18-f37072fd\.pth: not resnet50 weights: .*missing: .*shape"):
        reg.get("resnet50").build(good)
    with pytest.raises(ValueError, match=r"resnet18-f37072fd\.pth: not dinov2_vits14 weights"):
        reg.get("dinov2_vits14").build(good)
    torch.save({"epoch": 3}, tmp_path / "meta.pth")
    with pytest.raises(ValueError, match=r"meta\.pth: no state dict"):
        reg.get("resnet18").build(tmp_path / "meta.pth")
    with pytest.raises(ValueError, match=r"torn\.pth"):
        reg.recognise(torn)


def test_find_weights_and_default_dirs(tmp_path):
    hub = tmp_path / "hub"
    hub.mkdir()
    dirs = [tmp_path, hub]
    assert reg.find_weights("resnet50", dirs) is None
    (hub / "resnet50-0676ba61.pth").write_bytes(b"x")  # V1 in the hub cache
    assert reg.find_weights("resnet50", dirs) == hub / "resnet50-0676ba61.pth"
    (hub / "resnet50-11ad3fa6.pth").write_bytes(b"x")  # V2 is preferred in the same folder
    assert reg.find_weights("resnet50", dirs) == hub / "resnet50-11ad3fa6.pth"
    (tmp_path / "resnet50-0676ba61.pth").write_bytes(b"x")  # WEIGHTS_DIR comes first
    assert reg.find_weights("resnet50", dirs) == tmp_path / "resnet50-0676ba61.pth"
    (tmp_path / "dinov2_vits14_pretrain.pth").mkdir()  # a folder is not a weight file
    assert reg.find_weights("dinov2_vits14", dirs) is None
    assert reg.find_weights("small_cnn", dirs) is None
    hub_ckpt = reg.Path(torch.hub.get_dir()) / "checkpoints"
    assert reg.default_weight_dirs(tmp_path) == [tmp_path, hub_ckpt]
    assert reg.default_weight_dirs(None) == [hub_ckpt]


def test_sha256_prefix_convention(tmp_path):
    import hashlib

    assert reg.sha256_prefix("resnet18-f37072fd.pth") == "f37072fd"
    assert reg.sha256_prefix("dinov2_vits14_pretrain.pth") is None
    data = b"weights"
    name = f"w-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    (tmp_path / name).write_bytes(data)
    (tmp_path / "w-00000000.pth").write_bytes(data)
    assert reg.verify_sha256(tmp_path / name) is True
    assert reg.verify_sha256(tmp_path / "w-00000000.pth") is False


def test_selfsup_keep_legacy_names_and_keys():
    from mlcore.encoders import selfsup
    from mlcore.models.encoders import ENCODERS, Normalize, ResNet18Small, SmallCNN, build_encoder

    assert ENCODERS == {"small_cnn": SmallCNN, "resnet18": ResNet18Small} and ENCODERS is selfsup.ENCODERS
    assert Normalize is selfsup.Normalize
    cfg = EncoderConfig(arch="resnet18", in_channels=3, adapters=True)
    torch.manual_seed(0)
    legacy = build_encoder(cfg)
    torch.manual_seed(0)
    viareg = reg.get("resnet18_small").build(cfg=cfg)
    assert type(viareg) is ResNet18Small and not viareg.training
    a, b = legacy.state_dict(), viareg.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    # saved checkpoints depend on these names
    assert {"norm.mean", "norm.std", "net.conv1.weight", "net.layer4.1.bn2.running_var",
            "adapters.3.up.bias"} <= set(a) and not any(k.startswith("net.fc.") for k in a)
    small = reg.get("small_cnn").build(in_channels=3, widths=(8, 16))
    assert isinstance(small, SmallCNN) and small.out_dim == 16
    assert list(small.state_dict())[:3] == ["norm.mean", "norm.std", "features.0.0.weight"]
    assert small(torch.rand(2, 3, 20, 20)).shape == (2, 16)


def test_package_import_does_not_import_torch():
    code = "import sys; import mlcore.encoders; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=reg.Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False", out.stderr
