"""Tiny timm and open_clip encoders for tests, registered beside the real ones: the same
family code (timm_family.spec, open_clip_family.spec), the same file layouts, a fraction of
the size. The open_clip one is a custom model config in open_clip's own JSON format."""
import json

import torch

from mlcore.encoders import catalog, registry

TINY_CLIP = "open_clip/mlcore-test-tiny"
TINY_CLIP_ARCH = "mlcore-test-tiny-clip"
TINY_CLIP_FILE = "open_clip_mlcore-test-tiny.bin"
TINY_TIMM = "timm/test_vit"
TINY_TIMM_ARCH = "test_vit.r160_in1k"  # timm's own test model: 160 px, 64-d features
TINY_TIMM_FILE = "test_vit.r160_in1k.safetensors"
# embed_dim 32, 32 px images in 4x4 patches, 2-layer towers; the tokenizer is open_clip's
# own (its BPE vocabulary ships in the package), context cut to 24 tokens
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def register_tiny_clip(monkeypatch, tmp_path):
    """Register TINY_CLIP (open_clip's model config TINY_CLIP_ARCH) in the catalog and the
    registry for this test; returns its spec."""
    import open_clip

    from mlcore.encoders import open_clip_family

    cfg = tmp_path / f"{TINY_CLIP_ARCH}.json"
    cfg.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(cfg)
    monkeypatch.setitem(catalog.PRETRAINED, TINY_CLIP, catalog.Pretrained(
        TINY_CLIP, "open_clip", 32, 32, (TINY_CLIP_FILE,), "https://example.invalid/", "tiny CLIP for tests",
        arch=TINY_CLIP_ARCH, zero_shot=True))
    spec = open_clip_family.spec(TINY_CLIP, TINY_CLIP_ARCH, 32, 32, (TINY_CLIP_FILE,), "tiny CLIP for tests")
    monkeypatch.setitem(registry.REGISTRY, TINY_CLIP, spec)
    return spec


def register_tiny_timm(monkeypatch):
    from mlcore.encoders import timm_family

    monkeypatch.setitem(catalog.PRETRAINED, TINY_TIMM, catalog.Pretrained(
        TINY_TIMM, "timm", 64, 160, (TINY_TIMM_FILE,), "https://example.invalid/", "tiny timm ViT for tests",
        arch=TINY_TIMM_ARCH))
    spec = timm_family.spec(TINY_TIMM, TINY_TIMM_ARCH, 64, (TINY_TIMM_FILE,), "tiny timm ViT for tests")
    monkeypatch.setitem(registry.REGISTRY, TINY_TIMM, spec)
    return spec


def tiny_clip_state_dict(seed=0):
    """A randomly initialised TINY_CLIP, state dict in open_clip's layout."""
    import open_clip

    torch.manual_seed(seed)
    return open_clip.create_model(TINY_CLIP_ARCH, pretrained=None).state_dict()


def tiny_timm_state_dict(seed=0):
    """A randomly initialised timm test_vit with its classifier, as model.state_dict() gives it."""
    import timm

    torch.manual_seed(seed)
    return timm.create_model(TINY_TIMM_ARCH, pretrained=False).state_dict()
