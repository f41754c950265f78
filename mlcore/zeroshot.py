"""Zero-shot guesses from class names with a CLIP-like encoder (Radford et al. 2021, sec. 3.1).

    zs = ZeroShot.build("open_clip/ViT-B-32", weights, ["cat", "dog"])   # text prototypes
    p0 = zs.probs(emb)                     # (N, C) before the first label
    p = blend(propagated, p0, labels, fade_labels=5)   # faded out as labels arrive

Each class's prototype is the mean of its prompts' unit text embeddings ("a photo of a
{name}.", ... : prompt ensembling, CLIP sec. 3.1.4), normalised again; a guess is
softmax(logit_scale * cos(image, prototype)) over the classes, logit_scale being the
model's own learned temperature. As labels arrive the propagation takes over class by class:
the zero-shot weight of class c is w_c = max(0, 1 - n_c / fade_labels) with n_c the labels
of class c, and an unlabeled item's guess is (1 - w_c) * propagation_c + w_c * zero-shot_c,
renormalised over the classes. With ``fade_labels`` labels of every class the guesses are
propagation's alone. Text embeddings are computed here, in the trainer, never in a web
process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# A general-purpose subset of CLIP's ImageNet prompt ensemble (CLIP's notebook
# "Prompt_Engineering_for_ImageNet"), without ImageNet-specific ones (origami, video game).
TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a close-up photo of a {}.",
    "a bright photo of a {}.",
    "a cropped photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "itap of a {}.",
)


def prompts(name: str, templates: Sequence[str] = TEMPLATES) -> list[str]:
    """The prompts of one class name (underscores read as spaces: "golden_retriever")."""
    words = " ".join(name.replace("_", " ").split())
    return [t.format(words) for t in templates]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def class_prototypes(encode: Callable, class_names: Sequence[str],
                     templates: Sequence[str] = TEMPLATES) -> np.ndarray:
    """(C, D) unit prototypes: per class, the mean of its prompts' unit text embeddings,
    normalised. ``encode(texts) -> (T, D)`` tensor or array of text embeddings."""
    out = []
    for name in class_names:
        e = encode(prompts(name, templates))
        e = e.float().cpu().numpy() if hasattr(e, "cpu") else np.asarray(e, np.float32)  # (T, D)
        out.append(_unit(_unit(e).mean(axis=0)))
    return np.stack(out).astype(np.float32)


def zero_shot_probs(emb: np.ndarray, prototypes: np.ndarray, logit_scale: float, chunk: int = 65_536) -> np.ndarray:
    """(N, C) = softmax over classes of logit_scale * cos(image, prototype)."""
    protos = _unit(prototypes)  # (C, D)
    out = np.empty((len(emb), len(protos)), np.float32)
    for a in range(0, len(emb), chunk):
        logits = float(logit_scale) * (_unit(emb[a:a + chunk]) @ protos.T)  # (n, C)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        out[a:a + chunk] = e / e.sum(axis=1, keepdims=True)
    return out


def fade_weights(labels: np.ndarray, num_classes: int, fade_labels: float) -> np.ndarray:
    """(C,) zero-shot weight per class: max(0, 1 - labels of the class / fade_labels);
    all zeros when ``fade_labels`` <= 0 (zero-shot off)."""
    if fade_labels <= 0:
        return np.zeros(num_classes, np.float32)
    labels = np.asarray(labels)
    counts = np.bincount(labels[labels >= 0], minlength=num_classes)[:num_classes]
    return np.clip(1.0 - counts / float(fade_labels), 0.0, 1.0).astype(np.float32)


def blend(propagated: np.ndarray | None, zero_shot: np.ndarray, labels: np.ndarray,
          fade_labels: float) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, C), the weights (C,) used). Unlabeled rows get, per class,
    (1 - w_c) * propagated + w_c * zero_shot, renormalised; labeled rows keep propagation's
    (clamped to their labels). No propagation yet (no label): zero-shot alone."""
    labels = np.asarray(labels)
    w = fade_weights(labels, zero_shot.shape[1], fade_labels)
    if propagated is None:
        return zero_shot.astype(np.float32, copy=True), np.ones_like(w)
    out = propagated.astype(np.float32, copy=True)
    if not w.any():
        return out, w
    open_rows = labels < 0
    mixed = (1.0 - w) * out[open_rows] + w * zero_shot[open_rows]  # (U, C)
    out[open_rows] = mixed / np.maximum(mixed.sum(axis=1, keepdims=True), 1e-12)
    return out, w


@dataclass(frozen=True)
class ZeroShot:
    """The text prototypes of one set of class names."""

    class_names: tuple
    prototypes: np.ndarray  # (C, D) unit rows
    logit_scale: float

    def probs(self, emb: np.ndarray) -> np.ndarray:
        return zero_shot_probs(emb, self.prototypes, self.logit_scale)

    @classmethod
    def build(cls, encoder: str, weights, class_names: Sequence[str], device="cpu",
              templates: Sequence[str] = TEMPLATES) -> ZeroShot:
        """Prototypes of ``class_names`` from the text tower of registered encoder
        ``encoder`` with the weights of the local file ``weights``. ValueError when the
        encoder has no text tower."""
        import torch

        from mlcore.encoders import registry

        spec = registry.get(encoder)
        if not spec.zero_shot:
            raise ValueError(f"The {encoder} encoder has no text tower: no zero-shot guesses.")
        model = spec.build(weights).to(device)
        encode, logit_scale = spec.text_encoder(model)
        with torch.no_grad():
            prototypes = class_prototypes(encode, class_names, templates)
        return cls(tuple(class_names), prototypes, logit_scale)
