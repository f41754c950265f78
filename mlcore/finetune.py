"""Semi-supervised fine-tuning (the slow path), two methods (``FinetuneConfig.method``).

``self_training`` (the presets' choice; ``self_train``): noisy-student self-training (Xie
et al. 2020) on the whole pool. Every pool image gets a target: its human label (soft rows
for overlapping answers) or else the teacher's guess (the argmax of the fast path's
probabilities, propagated without the held-out labels), and the encoder with a cosine
classifier learns them under augmentation, so the student generalises past the teacher's
graph instead of copying it. Measured on MNIST (SimCLR SmallCNN, 10k pool, 100 random
labels, seeds 0 and 1): propagation over the student's embeddings 97.8-98.0% test accuracy
against the teacher's 96.0%, after 20 passes (780 steps of 256 images, about 45 s on one
CPU thread).

``fixmatch`` (``finetune``):
Loss = CE on human labels (soft labels, smoothing)
     + lambda_fm * FixMatch consistency (Sohn et al. 2020)
     + lambda_lp * certainty- and class-weighted CE on label-propagation pseudo-labels
       (Iscen et al. 2019, eq. 14),
with an EMA of the weights (the EMA model is what is returned) and bf16 autocast on CUDA.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch

from mlcore import augment
from mlcore.config import EncoderConfig, FinetuneConfig
from mlcore.data import to_float
from mlcore.device import generator, get_device
from mlcore.losses.fixmatch import fixmatch_loss
from mlcore.losses.nt_xent import nt_xent
from mlcore.losses.soft_ce import soft_cross_entropy
from mlcore.models.heads import ClassifierHead, ProjectionHead
from mlcore.pretrain import as_pool_tensor
from mlcore.propagation import class_weights, label_matrix
from mlcore.schedule import StepBudget


def _trainable(encoder, head, mode: str):
    """Parameter groups for the fine-tuning mode: full, frozen (head only) or adapters."""
    if mode == "full":
        return list(encoder.parameters()), list(head.parameters())
    if mode in ("frozen", "adapters"):
        encoder.requires_grad_(False)
        enc = []
        if mode == "adapters":
            for name, p in encoder.named_parameters():
                if ".down." in name or ".up." in name:
                    p.requires_grad_(True)
                    enc.append(p)
        return enc, list(head.parameters())
    raise ValueError(f"unknown fine-tuning mode {mode!r}")


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


# self-training views: milder than the pretraining's so the class survives every view
ST_CROP, ST_ROTATE_DEG, ST_ERASE = (0.6, 1.0), 15.0, 0.25
COSINE_SCALE = 10.0  # logits = 10 x cosine(feature, class weight): a bounded, well-scaled softmax


class CosineClassifier(torch.nn.Module):
    """Linear classifier on L2-normalised features (the space the graph is built in)."""

    def __init__(self, din: int, num_classes: int):
        super().__init__()
        self.fc = torch.nn.Linear(din, num_classes)

    def forward(self, h):  # (B, D) -> (B, C) logits
        return self.fc(torch.nn.functional.normalize(h, dim=1) * COSINE_SCALE)


def self_targets(labels: np.ndarray, teacher_probs: np.ndarray, num_classes: int,
                 soft_labels: np.ndarray | None, human_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Targets (N, C) and weights (N,) of self-training: a labelled row's (soft) label
    with ``human_weight``, every other row the teacher's argmax as a one-hot with weight 1.
    Hard pseudo-labels, as in the noisy student: the fast path's probabilities are flat
    (propagation spreads mass): on MNIST soft targets cost the student's classifier 1 point
    of test accuracy and a 0.9 confidence threshold 27 points (it drops whole classes)."""
    y = label_matrix(labels, num_classes, soft_labels)  # (N, C), zero rows unlabelled
    mass = y.sum(1)
    human = mass > 0
    targets = np.eye(num_classes, dtype=np.float32)[teacher_probs.argmax(1)]
    targets[human] = y[human] / mass[human, None]
    weights = np.where(human, human_weight, 1.0).astype(np.float32)
    return targets, weights


def self_train(images, labels: np.ndarray, encoder: torch.nn.Module, enc_cfg: EncoderConfig,
               cfg: FinetuneConfig, num_classes: int, teacher_probs: np.ndarray,
               soft_labels: np.ndarray | None = None,
               progress: Callable[[float, dict], None] | None = None,
               time_budget_s: float | None = None, device=None) -> torch.nn.Module:
    """Noisy-student self-training of ``encoder`` (trained in place and returned, in eval
    mode). ``cfg.steps`` steps of ``cfg.batch_pool`` pool images, at most ``cfg.max_epochs``
    passes over the pool (20 passes of a 10k pool are 781 steps; more passes over a small
    pool only copy the teacher's mistakes more faithfully), fewer when the time budget ends
    first (the cosine schedule follows whichever ends first); AdamW with a 10% warm-up.
    Rows of ``labels`` that are -1 learn ``teacher_probs``' argmax: the caller withholds
    the labels it judges the result on from both."""
    device = torch.device(device) if device is not None else get_device()
    torch.manual_seed(cfg.seed)
    x = as_pool_tensor(images, enc_cfg, device)  # (N, C, S, S) uint8 or a PixelPool
    n = len(x)
    if (labels >= 0).sum() == 0 and (soft_labels is None or soft_labels.sum() == 0):
        raise ValueError("self-training needs at least one label")
    t_np, w_np = self_targets(labels, teacher_probs, num_classes, soft_labels, cfg.human_weight)
    targets, weights = torch.from_numpy(t_np).to(device), torch.from_numpy(w_np).to(device)
    encoder = encoder.to(device).train()
    clf = CosineClassifier(encoder.out_dim, num_classes).to(device)
    enc_params, _ = _trainable(encoder, clf, cfg.mode)
    if cfg.mode != "full":
        encoder.eval()  # frozen BN statistics
    opt = torch.optim.AdamW([{"params": enc_params, "lr": cfg.lr * cfg.encoder_lr_scale},
                             {"params": list(clf.parameters()), "lr": cfg.lr}],
                            weight_decay=cfg.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    b = min(cfg.batch_pool, n)
    steps = max(1, min(cfg.steps, math.ceil(cfg.max_epochs * n / b)))
    # warm-up over the first 10% of the progress (the steps' or the time budget's)
    plan = StepBudget(steps, time_budget_s, warmup_fraction=max(1, steps // 10) / steps)
    gen = generator(cfg.seed, device)
    use_amp = cfg.amp and device.type == "cuda"
    order, at = torch.randperm(n, generator=gen, device=device), 0
    go = True
    while go:
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * plan.lr_factor()
        if at + b > n:  # epochs over the pool, a fresh order each time
            order, at = torch.randperm(n, generator=gen, device=device), 0
        idx = order[at:at + b]
        at += b
        xb = augment.contrastive(to_float(x[idx]), gen, ST_CROP, ST_ROTATE_DEG, ST_ERASE, enc_cfg.flip)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            logits = clf(encoder(xb)).float()
        w = weights[idx]
        loss = -(targets[idx] * logits.log_softmax(1)).sum(1).mul(w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        go = plan.tick()
        if progress is not None and (plan.step % 10 == 0 or not go):
            progress(plan.progress, {"step": plan.step, "total": plan.total, "loss": loss.item(),
                                     "elapsed_s": plan.elapsed})
    if cfg.mode != "full":
        encoder.requires_grad_(True)
    return encoder.eval()


def finetune(images, labels: np.ndarray, encoder: torch.nn.Module, enc_cfg: EncoderConfig,
             cfg: FinetuneConfig, num_classes: int, head: ClassifierHead | None = None,
             soft_labels: np.ndarray | None = None, lp_probs: np.ndarray | None = None,
             lp_weights: np.ndarray | None = None,
             progress: Callable[[float, dict], None] | None = None,
             time_budget_s: float | None = None, device=None,
             proj: ProjectionHead | None = None):
    """Fine-tune ``encoder`` (+ a classifier head) on the pool; returns the EMA
    (encoder, head, projection head). The projection head (used only when
    ``cfg.lambda_contrastive > 0``) is kept by the caller for the next slow path. images: uint8 (N, H, W[, C]) or the pool tensor; labels (N,) with
    -1 = unlabelled; lp_probs (N, C) / lp_weights (N,) from the fast path.
    ``cfg.method == "self_training"``: ``self_train`` with ``lp_probs`` as the teacher;
    the head and projection come back unchanged."""
    if cfg.method == "self_training":
        if lp_probs is None:
            raise ValueError("self-training needs the fast path's probabilities (lp_probs)")
        encoder = self_train(images, labels, encoder, enc_cfg, cfg, num_classes, lp_probs, soft_labels,
                             progress, time_budget_s, device)
        return encoder, head, proj
    if cfg.method != "fixmatch":
        raise ValueError(f"unknown fine-tuning method {cfg.method!r}")
    # 1. data: labelled targets and LP pseudo-labels
    device = torch.device(device) if device is not None else get_device()
    torch.manual_seed(cfg.seed)
    x = as_pool_tensor(images, enc_cfg, device)  # (N, C, S, S) uint8
    n = len(x)
    y = torch.from_numpy(label_matrix(labels, num_classes, soft_labels)).to(device)  # (N, C)
    lab_idx = torch.nonzero(y.sum(1) > 0).ravel()
    if len(lab_idx) == 0:
        raise ValueError("fine-tuning needs at least one label")
    if lp_probs is not None and cfg.lambda_lp > 0:
        pseudo_np = lp_probs.argmax(1)
        w = (lp_weights if lp_weights is not None else np.ones(n, np.float32))
        w = w * class_weights(pseudo_np, num_classes)
        w[lab_idx.cpu().numpy()] = 0  # human labels are counted by the supervised term
        pseudo = torch.from_numpy(pseudo_np).to(device)
        pseudo_w = torch.from_numpy(w.astype(np.float32)).to(device)
    else:
        pseudo = pseudo_w = None
    # 2. models, EMA copies, optimiser
    encoder = encoder.to(device).train()
    head = head or ClassifierHead(encoder.out_dim, num_classes, enc_cfg.dropout)
    head = head.to(device).train()
    proj = (proj or ProjectionHead(encoder.out_dim, encoder.out_dim, enc_cfg.proj_dim)).to(device).train()
    model = torch.nn.ModuleDict({"encoder": encoder, "head": head, "proj": proj})
    ema = copy.deepcopy(model).requires_grad_(False)
    enc_params, head_params = _trainable(encoder, head, cfg.mode)
    if cfg.mode != "full":
        encoder.eval()  # frozen BN statistics
    opt = torch.optim.AdamW([{"params": enc_params, "lr": cfg.lr * cfg.encoder_lr_scale},
                             {"params": head_params + list(proj.parameters()), "lr": cfg.lr}],
                            weight_decay=cfg.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    plan = StepBudget(cfg.steps, time_budget_s, warmup=0)
    gen = generator(cfg.seed, device)
    use_amp = cfg.amp and device.type == "cuda"
    b, mu_b = cfg.batch_size, cfg.batch_size * cfg.unlabeled_ratio
    # 3. steps
    go = True
    while go:
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * plan.lr_factor()
        if plan.step < cfg.head_warmup_steps:
            # a random head's first gradients would distort the pretrained features
            opt.param_groups[0]["lr"] = 0.0
        li = lab_idx[torch.randint(len(lab_idx), (b,), generator=gen, device=device)]
        ui = torch.randint(n, (mu_b,), generator=gen, device=device)
        xl = augment.weak(to_float(x[li]), gen, enc_cfg.flip)  # (B, C, S, S)
        xu = to_float(x[ui])
        xw = augment.weak(xu, gen, enc_cfg.flip)  # (muB, C, S, S)
        xs = augment.strong(xu, gen, enc_cfg.flip)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            # one forward pass so BatchNorm sees labelled and unlabelled data together
            h = encoder(torch.cat([xl, xw, xs]))  # (B + 2 muB, D)
            logits = head(h)  # (B + 2 muB, C)
            lg_l, lg_w, lg_s = logits[:b], logits[b:b + mu_b], logits[b + mu_b:]
            loss = soft_cross_entropy(lg_l, y[li], smoothing=cfg.label_smoothing)
            fm, mask = fixmatch_loss(lg_w, lg_s, cfg.threshold)
            loss = loss + cfg.lambda_fixmatch * fm
            if pseudo is not None:
                loss = loss + cfg.lambda_lp * soft_cross_entropy(lg_s, pseudo[ui], pseudo_w[ui])
            if cfg.lambda_contrastive > 0:
                # the weak and strong views are two views of the same images
                z = proj(h[b:])
                loss = loss + cfg.lambda_contrastive * nt_xent(z[:mu_b], z[mu_b:], cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _ema_update(ema, model, cfg.ema if plan.step > 10 else 0.0)
        go = plan.tick()
        if progress is not None and (plan.step % 10 == 0 or not go):
            progress(plan.progress, {"step": plan.step, "total": plan.total,
                                              "loss": loss.item(), "mask": mask.mean().item(),
                                              "elapsed_s": plan.elapsed})
    ema.requires_grad_(True)  # trainable again for the next slow path
    if cfg.mode != "full":
        encoder.requires_grad_(True)
    return ema["encoder"].eval(), ema["head"].eval(), ema["proj"]
