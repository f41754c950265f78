"""Dataclass configs. Every checkpoint stores the config it was trained with.

Only primitives, tuples and nested dataclasses are used so that ``asdict`` output
loads under ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field


@dataclass
class EncoderConfig:
    arch: str = "small_cnn"  # "small_cnn" (28-64 px) or "resnet18" (larger RGB)
    in_channels: int = 1
    input_size: int = 28
    widths: tuple = (32, 64, 128)  # small_cnn stages; the last is the embedding size
    proj_dim: int = 64
    dropout: float = 0.5  # classifier-head dropout, also the MC dropout of BALD
    adapters: bool = False  # residual bottleneck adapters (transfer learning)
    adapter_dim: int = 32
    flip: bool = False  # horizontal flips allowed by the domain (not for digits)


@dataclass
class PretrainConfig:
    method: str = "simclr"  # "simclr" or "byol"
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2  # NT-Xent
    byol_tau: float = 0.99  # BYOL target EMA, annealed to 1 (Grill et al. eq. 4 schedule)
    crop_scale: tuple = (0.5, 1.0)
    rotate_deg: float = 15.0
    erase_prob: float = 0.5
    bf16: bool = False  # CPU autocast bf16 (only faster on CPUs with AMX/avx512_bf16)
    seed: int = 0


@dataclass
class PropagationConfig:
    k: int = 50  # Iscen et al. 2019 defaults: k=50, gamma=3, alpha=0.99, CG
    gamma: float = 3.0
    alpha: float = 0.99
    cg_iters: int = 20
    cg_tol: float = 1e-6
    balance_labels: bool = False  # divide each column of Y by its label count
    exact_max: int = 100_000  # above this many items: approximate search (IVF-flat, mlcore.knn)
    grow_max_new: float = 0.5  # with_embeddings(known=...): rebuild when more new rows than this fraction
    grow_exact_pairs: float = 2e9  # growth: exact searches while (rows searched x rows) stays below this
    predict_k: int = 20  # kNN of a new image among the pool items (inductive predict)
    proto_temperature: float = 0.1
    proto_weight: float = 0.0  # mix of prototype probabilities into LP probabilities


@dataclass
class FinetuneConfig:
    # "self_training": the encoder and a cosine classifier learn the whole pool's
    # pseudo-labels (propagation's guess, human labels where there are some) under
    # augmentation (noisy student, Xie et al. 2020; mlcore.finetune.self_train);
    # "fixmatch": human-labelled batches + FixMatch + certainty-weighted pseudo-labels
    method: str = "self_training"
    steps: int = 300
    batch_size: int = 64  # labelled batch
    unlabeled_ratio: int = 4  # mu in FixMatch
    lr: float = 1e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    threshold: float = 0.95  # FixMatch confidence threshold
    lambda_fixmatch: float = 1.0
    lambda_lp: float = 1.0  # weight of the certainty-weighted LP pseudo-label loss
    lambda_contrastive: float = 0.0  # NT-Xent on the unlabelled batch keeps the embedding from collapsing
    temperature: float = 0.2
    ema: float = 0.99
    head_warmup_steps: int = 50  # encoder frozen while the new head fits (LP-FT, Kumar et al. 2022)
    validate: bool = True  # adopt a new encoder only if it wins on held-out labels (mlcore.selection)
    holdout_fraction: float = 0.2  # labelled items kept out of fine-tuning to judge it (no audit items given)
    holdout_min: int = 10  # fewer held-out items than this: no fine-tuning (nothing honest to judge it on)
    adopt_alpha: float = 0.1  # one-sided sign test on the paired held-out outcomes
    mode: str = "full"  # "full" | "frozen" (head only) | "adapters" (head + adapters)
    encoder_lr_scale: float = 1.0  # e.g. 0.1 for full fine-tuning from a transferred checkpoint
    amp: bool = True  # only used on CUDA
    batch_pool: int = 256  # self-training: pool images per step
    max_epochs: float = 20.0  # self-training: at most this many passes over the pool (small pools)
    human_weight: float = 1.0  # self-training: a human label's weight against a pseudo-label's
    seed: int = 0


@dataclass
class AcquisitionConfig:
    strategy: str = "auto"
    candidates_factor: int = 10  # diversity: pick the batch among factor x batch top items
    mc_samples: int = 20  # BALD
    cold_start_k: int = 20  # typicality neighbourhood (TypiClust uses 20)
    spectral_max: int = 20_000  # cold start: spectral clusters up to this many items, k-means above
    cold_start_until: int = 30  # "auto" keeps choosing typical uncovered points below this many labels


@dataclass
class HeadConfig:
    """The inductive head on the cached embeddings (mlcore.head): trained on the human
    labels plus propagation's certainty-weighted pseudo-labels, mixed into propagation by
    a weight chosen on held-out labels, and the source of BALD's MC-dropout samples."""
    mix: bool = True  # consider mixing the head into the served probabilities (w chosen on held-out labels)
    hidden: int = 0  # 0: linear head; > 0: one hidden layer of this width
    dropout: float = 0.1  # input dropout while training, and BALD's MC dropout (0.5 cost 2-3 points)
    steps: int = 100  # fixed AdamW step count (no time budget: same result on any machine)
    lr: float = 0.01
    weight_decay: float = 1e-4
    batch: int = 1024  # unlabelled items per step (every labelled item is in every step)
    pseudo_weight: float = 1.0  # weight of the pseudo-label loss against the human labels' loss
    pseudo_max: int = 50_000  # unlabelled items the head trains on at most (a seeded sample)
    weights: tuple = (0.0, 0.25, 0.5, 0.75, 1.0)  # candidate mixing weights w of the head
    folds: int = 5
    min_heldout: int = 20  # fewer held-out labelled items than this: w = 0
    adopt_alpha: float = 0.1  # one-sided sign test of the best w against w = 0 (mlcore.selection)
    refit_growth: float = 0.25  # refit head and w when the labels grew by this fraction since the last fit


@dataclass
class LearnerConfig:
    num_classes: int = 10
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    acquisition: AcquisitionConfig = field(default_factory=AcquisitionConfig)
    seed: int = 0
    head: HeadConfig = field(default_factory=HeadConfig)


CONFIG_TYPES = {
    cls.__name__: cls
    for cls in (EncoderConfig, PretrainConfig, PropagationConfig, FinetuneConfig,
                AcquisitionConfig, HeadConfig, LearnerConfig)
}


def to_dict(cfg) -> dict:
    """Config -> plain dict (primitives only), tagged with its type name."""
    return {"type": type(cfg).__name__, "fields": dataclasses.asdict(cfg)}


def from_dict(d: dict):
    """Inverse of ``to_dict``; unknown keys are ignored so old checkpoints still load."""
    return _build(CONFIG_TYPES[d["type"]], d["fields"])


def _build(cls, values: dict):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        v = values[f.name]
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            v = _build(t, v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)
