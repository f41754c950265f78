"""Self-supervised pretraining on the unlabelled pool: SimCLR (NT-Xent) or BYOL.

Entry points: ``pretrain(images, ...) -> (encoder, embeddings)`` and
``embed(encoder, images) -> L2-normalised features``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from mlcore import augment
from mlcore.config import EncoderConfig, PretrainConfig
from mlcore.data import to_float, to_tensor
from mlcore.device import generator, get_device
from mlcore.losses.byol import byol_loss
from mlcore.losses.nt_xent import nt_xent
from mlcore.models.encoders import build_encoder
from mlcore.models.heads import PredictorHead, ProjectionHead
from mlcore.pixelpool import PixelPool
from mlcore.schedule import StepBudget

Progress = Callable[[float, dict], None]


def as_pool_tensor(images, enc_cfg: EncoderConfig, device):
    """uint8 images (N, H, W[, C]) or an already converted tensor -> uint8 (N, C, S, S); a
    ``PixelPool`` (the pool on disk) stays one, reading batches onto ``device``."""
    if isinstance(images, (torch.Tensor, PixelPool)):
        return images.to(device)
    return to_tensor(images, enc_cfg.input_size, device)


@torch.no_grad()
def embed(encoder: torch.nn.Module, images, enc_cfg: EncoderConfig | None = None,
          batch_size: int = 1024, device=None) -> np.ndarray:
    """Features (N, D) float32, L2-normalised (cosine similarity = inner product)."""
    device = device or next(encoder.parameters()).device
    x = images if isinstance(images, (torch.Tensor, PixelPool)) else to_tensor(images, enc_cfg.input_size, device)
    was_training = encoder.training
    encoder.eval()
    out = []
    for i in range(0, len(x), batch_size):
        h = encoder(to_float(x[i:i + batch_size].to(device)))  # (B, D)
        out.append(F.normalize(h.float(), dim=1).cpu())
    encoder.train(was_training)
    return torch.cat(out).numpy()


def _views(xb, gen, cfg: PretrainConfig, flip: bool):
    def view():
        return augment.contrastive(xb, gen, cfg.crop_scale, cfg.rotate_deg, cfg.erase_prob, flip)
    return view(), view()


def pretrain(images, enc_cfg: EncoderConfig, cfg: PretrainConfig,
             progress: Progress | None = None, time_budget_s: float | None = None,
             device=None, encoder: torch.nn.Module | None = None,
             return_projection: bool = False, steps: int | None = None):
    """Train an encoder without labels; returns (encoder, embeddings (N, D)).

    ``encoder`` continues from given weights (transfer learning); ``steps`` fixes the
    number of optimisation steps (instead of ``cfg.epochs`` epochs), so that a benchmark
    does the same work on a loaded machine as on a quiet one; ``time_budget_s`` shrinks
    the planned steps to fit; ``progress(fraction, info)`` is called every
    few steps with info = {"step", "total", "loss", "elapsed_s"}. With
    ``return_projection`` the trained projection head comes third, so the slow path's
    contrastive term continues from it instead of a random head."""
    # 1. data and models
    device = torch.device(device) if device is not None else get_device()
    torch.manual_seed(cfg.seed)
    x = as_pool_tensor(images, enc_cfg, device)  # (N, C, S, S) uint8
    n = len(x)
    if encoder is None:
        encoder = build_encoder(enc_cfg)
        encoder.norm.fit(to_float(x[:4096]))
    encoder = encoder.to(device).train()
    proj = ProjectionHead(encoder.out_dim, encoder.out_dim, enc_cfg.proj_dim).to(device)
    params = list(encoder.parameters()) + list(proj.parameters())
    if cfg.method == "byol":
        pred = PredictorHead(enc_cfg.proj_dim, encoder.out_dim, enc_cfg.proj_dim).to(device)
        params += list(pred.parameters())
        target = copy.deepcopy(torch.nn.Sequential(encoder, proj)).requires_grad_(False)
    elif cfg.method != "simclr":
        raise ValueError(f"unknown pretraining method {cfg.method!r}")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // bs)
    plan = StepBudget(steps or cfg.epochs * steps_per_epoch, time_budget_s, warmup=min(50, steps_per_epoch))
    gen = generator(cfg.seed, device)
    autocast = torch.autocast("cuda" if device.type == "cuda" else "cpu", dtype=torch.bfloat16,
                              enabled=(device.type == "cuda") or cfg.bf16)
    # 2. optimisation loop over shuffled epochs until the (time-adjusted) plan is done
    running = None
    go = True
    while go:
        perm = torch.randperm(n, generator=gen, device=device)
        for s in range(steps_per_epoch):
            idx = perm[s * bs:(s + 1) * bs]
            for g in opt.param_groups:
                g["lr"] = cfg.lr * plan.lr_factor()
            v1, v2 = _views(to_float(x[idx]), gen, cfg, enc_cfg.flip)  # 2 x (B, C, S, S)
            with autocast:
                if cfg.method == "simclr":
                    z = proj(encoder(torch.cat([v1, v2])))  # (2B, P)
                    loss = nt_xent(z[:len(idx)], z[len(idx):], cfg.temperature)
                else:
                    z = proj(encoder(torch.cat([v1, v2])))
                    p = pred(z)
                    with torch.no_grad():
                        t = target(torch.cat([v1, v2]))
                    b = len(idx)
                    loss = byol_loss(p[:b], p[b:], t[:b], t[b:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if cfg.method == "byol":
                # target EMA with tau annealed from byol_tau to 1 (Grill et al. 2020, sec. 3.2)
                tau = 1 - (1 - cfg.byol_tau) * (np.cos(np.pi * plan.progress) + 1) / 2
                with torch.no_grad():
                    online = torch.nn.Sequential(encoder, proj)
                    for pt, po in zip(target.parameters(), online.parameters()):
                        pt.mul_(tau).add_(po.detach(), alpha=1 - tau)
                    for bt, bo in zip(target.buffers(), online.buffers()):
                        bt.copy_(bo)
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            go = plan.tick()
            if progress is not None and (plan.step % 10 == 0 or not go):
                progress(plan.progress, {"step": plan.step, "total": plan.total,
                                                  "loss": running, "elapsed_s": plan.elapsed})
            if not go:
                break
    # 3. embeddings of the whole pool with the trained encoder
    if return_projection:
        return encoder, embed(encoder, x), proj.eval()
    return encoder, embed(encoder, x)
