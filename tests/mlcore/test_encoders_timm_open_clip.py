"""The timm and open_clip families: specs and preprocessing, strict loading of files in each
library's own layout (written by the test from randomly initialised models), recognition of
stock state dicts, and the families' absence when their packages are not installed."""
import sys

import open_clip
import pytest
import timm
import torch
from safetensors.torch import save_file

from mlcore.encoders import catalog
from mlcore.encoders import registry as reg
from tests.tiny_encoders import TINY_CLIP, TINY_CLIP_ARCH, register_tiny_clip, tiny_clip_state_dict

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))

# name: (library model, out_dim, (mean, std), known files)
EXPECTED = {
    "timm/vit_small_patch16_224": ("vit_small_patch16_224.augreg_in21k_ft_in1k", 384, ((0.5,) * 3, (0.5,) * 3)),
    "timm/convnext_tiny": ("convnext_tiny.in12k_ft_in1k", 768, IMAGENET),
    "timm/efficientnet_b0": ("efficientnet_b0.ra_in1k", 1280, IMAGENET),
    "open_clip/ViT-B-32": ("ViT-B-32", 512, CLIP),
    "open_clip/ViT-B-16": ("ViT-B-16", 512, CLIP),
}


def test_specs_follow_each_librarys_preprocessing():
    assert set(reg.names("timm")) | set(reg.names("open_clip")) == set(EXPECTED)
    for name, (arch, dim, (mean, std)) in EXPECTED.items():
        s, c = reg.get(name), catalog.PRETRAINED[name]
        assert (c.arch, c.out_dim, s.out_dim, s.input_size, c.input_size) == (arch, dim, dim, 224, 224)
        assert (s.mean, s.std, s.channels) == (mean, std, 3)
        assert s.weight_files == c.weight_files and len(c.weight_files) == 2
        assert s.zero_shot == c.zero_shot == (c.family == "open_clip")
        assert reg.sha256_prefix(c.weight_files[0]) is None  # names without a hash: layout checks only
    assert catalog.PRETRAINED["timm/convnext_tiny"].url("x") == (
        "https://huggingface.co/timm/convnext_tiny.in12k_ft_in1k/resolve/main/model.safetensors")
    assert catalog.PRETRAINED["open_clip/ViT-B-32"].url("x") == (
        "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/main/open_clip_pytorch_model.bin")
    # auto prefers DINOv2, then CLIP, then the timm models, and names only catalogued encoders
    assert catalog.PREFERENCE[:4] == ("dinov2_vitb14", "dinov2_vits14", "open_clip/ViT-B-16", "open_clip/ViT-B-32")
    assert set(catalog.PREFERENCE) == set(catalog.PRETRAINED)


def _timm_reference(arch, sd):
    """timm's own feature extractor (num_classes=0) with the file's backbone tensors."""
    ref = timm.create_model(arch, pretrained=False, num_classes=0)
    ref.load_state_dict({k: v for k, v in sd.items() if k in ref.state_dict()}, strict=True)
    return ref.eval()


@pytest.mark.parametrize("name,fmt", [("timm/efficientnet_b0", "pth"), ("timm/vit_small_patch16_224", "safetensors")])
def test_timm_stock_file_loads_strictly_and_matches_timm(tmp_path, name, fmt):
    arch = EXPECTED[name][0]
    torch.manual_seed(0)
    sd = timm.create_model(arch, pretrained=False).state_dict()  # with its 1000-class head
    path = tmp_path / f"weights.{fmt}"
    if fmt == "pth":
        torch.save(sd, path)
    else:
        save_file(sd, str(path))  # the hub's model.safetensors
    model = reg.get(name).build(path)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, EXPECTED[name][1])
        torch.testing.assert_close(out, _timm_reference(arch, sd)(x), rtol=0, atol=0)
    del sd[next(k for k in sd if "blocks" in k)]
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"broken\.pth: not timm/.* 1 missing: .*blocks"):
        reg.get(name).build(tmp_path / "broken.pth")


def test_open_clip_file_loads_the_whole_model_and_embeds_like_encode_image(tmp_path, monkeypatch):
    spec = register_tiny_clip(monkeypatch, tmp_path)
    sd = tiny_clip_state_dict()
    assert {"positional_embedding", "text_projection", "logit_scale", "token_embedding.weight",
            "ln_final.weight", "visual.proj", "transformer.resblocks.0.attn.in_proj_weight"} <= set(sd)
    torch.save(sd, tmp_path / "clip.bin")
    model = spec.build(tmp_path / "clip.bin")
    assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items()) and len(model.state_dict()) == len(sd)
    ref = open_clip.create_model(TINY_CLIP_ARCH, pretrained=None)
    ref.load_state_dict(sd)
    ref.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref.encode_image(x), rtol=0, atol=0)  # (3, 32), not normalised
    encode, scale = spec.text_encoder(model)
    tokens = open_clip.get_tokenizer(TINY_CLIP_ARCH)(["a photo of a cat."])
    with torch.no_grad():
        torch.testing.assert_close(encode(["a photo of a cat."]), ref.encode_text(tokens), rtol=0, atol=0)
    assert scale == pytest.approx(float(sd["logit_scale"].exp()))
    # the text tower is no head: a file without it does not load
    torch.save({k: v for k, v in sd.items() if k.startswith("visual.")}, tmp_path / "visual.bin")
    with pytest.raises(ValueError, match=r"visual\.bin: not open_clip/mlcore-test-tiny weights: .*missing"):
        spec.build(tmp_path / "visual.bin")


def test_open_clip_real_layouts_are_open_clips_own():
    """The registered ViT-B-32/16 are open_clip's model configs: 302 tensors, patch sizes apart."""
    b32, b16 = reg.stock_shapes("open_clip/ViT-B-32"), reg.stock_shapes("open_clip/ViT-B-16")
    assert len(b32) == len(b16) == 302
    assert b32["visual.conv1.weight"] == (768, 3, 32, 32) and b16["visual.conv1.weight"] == (768, 3, 16, 16)
    assert b32["text_projection"] == (512, 512) and b32["logit_scale"] == () and b32["token_embedding.weight"] == (
        49408, 512)


def _meta(make):
    with torch.device("meta"):
        return make().state_dict()


def test_recognise_stock_timm_and_open_clip_state_dicts(tmp_path, monkeypatch):
    for name, (arch, _dim, _norm) in EXPECTED.items():
        if name.startswith("timm/"):
            sd = _meta(lambda arch=arch: timm.create_model(arch, pretrained=False))
        else:
            sd = _meta(lambda arch=arch: open_clip.create_model(arch, pretrained=None, device="meta"))
        n = len(sd)
        assert reg.recognise(sd) == (name, n, n)
        assert reg.recognise({"state_dict": {f"module.{k}": v for k, v in sd.items()}}) == (name, n, n)
    # timm's ResNet-50 has torchvision's keys: it is torchvision's resnet50 (same network)
    sd = _meta(lambda: timm.create_model("resnet50", pretrained=False))
    assert reg.recognise(sd) == ("resnet50", 320, 320)
    register_tiny_clip(monkeypatch, tmp_path)
    sd = tiny_clip_state_dict()
    assert reg.recognise(sd) == (TINY_CLIP, len(sd), len(sd))


def test_safetensors_files_are_read_by_their_content(tmp_path):
    from mlcore.encoders.spec import is_safetensors, read_state_dict

    sd = {"a.weight": torch.randn(2, 3), "b": torch.zeros(1)}
    save_file(sd, str(tmp_path / "w.part"))  # a download in progress: the name says nothing
    assert is_safetensors(tmp_path / "w.part") and not is_safetensors(tmp_path / "missing")
    got = read_state_dict(tmp_path / "w.part")
    assert set(got) == set(sd) and torch.equal(got["a.weight"], sd["a.weight"])
    torch.save(sd, tmp_path / "w.pth")
    assert not is_safetensors(tmp_path / "w.pth")
    torn = tmp_path / "torn.safetensors"
    torn.write_bytes((tmp_path / "w.part").read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"torn\.safetensors: not a readable safetensors file"):
        read_state_dict(torn)


def test_families_are_left_out_when_their_packages_are_missing(monkeypatch):
    for package in ("timm", "open_clip"):
        monkeypatch.setitem(sys.modules, package, None)  # `import timm` now fails as if not installed
        monkeypatch.delitem(sys.modules, f"mlcore.encoders.{package}_family")  # imported again
    specs, missing = reg.load_families()
    assert {s.family for s in specs.values()} == {"selfsup", "torchvision", "dinov2"}
    assert set(specs) == set(reg.REGISTRY) - set(EXPECTED)
    assert missing == {"timm": "the timm package is not installed (pip install timm)",
                       "open_clip": "the open_clip package is not installed (pip install open-clip-torch)"}
    # the catalog still lists them, saying why they cannot be used
    assert set(EXPECTED) <= set(catalog.PRETRAINED)
    assert "needs the open_clip package, which is not installed" in catalog.missing_package("open_clip/ViT-B-32")
    assert not catalog.usable("timm/convnext_tiny") and catalog.usable("resnet18") and catalog.usable("dinov2_vits14")
    monkeypatch.setattr(reg, "REGISTRY", specs)
    monkeypatch.setattr(reg, "MISSING", missing)
    with pytest.raises(KeyError, match="timm/convnext_tiny encoder cannot be used here: the timm package"):
        reg.get("timm/convnext_tiny")
    assert reg.recognise(_meta(lambda: torch.nn.Linear(3, 3))) is None


def test_other_import_errors_of_a_family_are_not_hidden(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlcore.encoders.timm_family", None)  # our own module broken
    with pytest.raises(ModuleNotFoundError):
        reg.load_families()
