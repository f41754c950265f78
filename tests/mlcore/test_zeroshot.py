"""Zero-shot guesses from class names (mlcore.zeroshot): prototypes from a CLIP-layout model's
text tower, checked against a naive reference computed with open_clip directly; the fade-out
rule as labels arrive."""
import numpy as np
import open_clip
import pytest
import torch

from mlcore import zeroshot
from tests.tiny_encoders import TINY_CLIP, TINY_CLIP_ARCH, register_tiny_clip, tiny_clip_state_dict

NAMES = ["cat", "golden_retriever", "fire truck"]


@pytest.fixture
def tiny_clip(tmp_path, monkeypatch):
    """(spec, weights file, open_clip reference model with the same weights)."""
    spec = register_tiny_clip(monkeypatch, tmp_path)
    sd = tiny_clip_state_dict(seed=1)
    with torch.no_grad():
        sd["logit_scale"].fill_(np.log(50.0))  # a trained-like temperature, so probabilities are sharp
    torch.save(sd, tmp_path / "clip.bin")
    ref = open_clip.create_model(TINY_CLIP_ARCH, pretrained=None)
    ref.load_state_dict(sd)
    return spec, tmp_path / "clip.bin", ref.eval()


def _naive_prototypes(ref, names):
    """Straight from open_clip: each prompt embedded and normalised, averaged, normalised."""
    tok = open_clip.get_tokenizer(TINY_CLIP_ARCH)
    out = []
    for name in names:
        texts = [t.format(name.replace("_", " ")) for t in zeroshot.TEMPLATES]
        with torch.no_grad():
            e = ref.encode_text(tok(texts))
        e = e / e.norm(dim=-1, keepdim=True)
        m = e.mean(0)
        out.append((m / m.norm()).numpy())
    return np.stack(out)


def test_prompts():
    assert zeroshot.prompts("golden_retriever")[0] == "a photo of a golden retriever."
    assert zeroshot.prompts("  fire   truck ", ["{}!"]) == ["fire truck!"]
    assert len(zeroshot.TEMPLATES) == len(set(zeroshot.TEMPLATES)) == 8


def test_guesses_are_the_text_prototypes_against_a_naive_reference(tiny_clip):
    spec, weights, ref = tiny_clip
    zs = zeroshot.ZeroShot.build(TINY_CLIP, weights, NAMES)
    assert zs.class_names == tuple(NAMES) and zs.logit_scale == pytest.approx(50.0, rel=1e-5)
    protos = _naive_prototypes(ref, NAMES)
    np.testing.assert_allclose(zs.prototypes, protos, atol=1e-5)
    # images: embedded by open_clip directly, then guessed; the guess is argmax cosine
    torch.manual_seed(0)
    with torch.no_grad():
        img = ref.encode_image(torch.randn(64, 3, 32, 32)).numpy()  # (64, 32)
    cos = (img / np.linalg.norm(img, axis=1, keepdims=True)) @ protos.T  # (64, 3)
    p = zs.probs(img)
    assert p.shape == (64, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(p.argmax(1), cos.argmax(1))
    expected = torch.softmax(torch.from_numpy(50.0 * cos), dim=1).numpy()
    np.testing.assert_allclose(p, expected, atol=1e-5)
    # the prototypes decide: the same images with the classes listed the other way round
    rev = zeroshot.ZeroShot.build(TINY_CLIP, weights, NAMES[::-1])
    np.testing.assert_allclose(rev.probs(img), p[:, ::-1], atol=1e-5)


def test_an_image_whose_embedding_is_a_prototype_is_guessed_as_that_class(tiny_clip):
    _spec, weights, _ref = tiny_clip
    zs = zeroshot.ZeroShot.build(TINY_CLIP, weights, NAMES)
    p = zs.probs(zs.prototypes * np.array([[2.0], [0.5], [3.0]], np.float32))  # scale does not matter
    np.testing.assert_array_equal(p.argmax(1), [0, 1, 2])


def test_an_encoder_without_text_tower_has_no_zero_shot(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="resnet18 encoder has no text tower"):
        zeroshot.ZeroShot.build("resnet18", tmp_path / "r18.pth", NAMES)


def test_fade_weights_per_class():
    labels = np.array([-1, 0, 0, 1, 1, 1, 1, 1, 1, -1])  # 2 of class 0, 6 of class 1, none of class 2
    np.testing.assert_allclose(zeroshot.fade_weights(labels, 3, 5), [0.6, 0.0, 1.0])
    np.testing.assert_allclose(zeroshot.fade_weights(labels, 3, 0), [0, 0, 0])  # off
    np.testing.assert_allclose(zeroshot.fade_weights(np.full(4, -1), 3, 5), [1, 1, 1])


def test_blend_rule():
    rng = np.random.default_rng(0)
    zs = rng.dirichlet(np.ones(3), size=6).astype(np.float32)
    prop = rng.dirichlet(np.ones(3), size=6).astype(np.float32)
    # no label: zero-shot alone
    out, w = zeroshot.blend(None, zs, np.full(6, -1), 5)
    np.testing.assert_array_equal(out, zs)
    np.testing.assert_array_equal(w, [1, 1, 1])
    # enough labels of every class: propagation alone, zero-shot weight 0
    labels3 = np.concatenate([np.repeat([0, 1, 2], 5), [-1]])
    out, w = zeroshot.blend(np.tile(prop, (3, 1))[:16], np.tile(zs, (3, 1))[:16], labels3, 5)
    assert not w.any()
    np.testing.assert_array_equal(out, np.tile(prop, (3, 1))[:16])
    # in between: per class (1 - w) * propagation + w * zero-shot, renormalised; labeled rows kept
    labels = np.array([0, 0, -1, -1, -1, -1])  # class 0: 2 labels -> w = 0.6; classes 1, 2: w = 1
    out, w = zeroshot.blend(prop, zs, labels, 5)
    np.testing.assert_allclose(w, [0.6, 1, 1])
    mix = (1 - w) * prop[2:] + w * zs[2:]
    np.testing.assert_allclose(out[2:], mix / mix.sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(out[:2], prop[:2])
    np.testing.assert_allclose(out.sum(1), 1, atol=1e-6)
