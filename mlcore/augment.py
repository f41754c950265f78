"""Batched augmentations on tensors on the training device.

Every function takes a float batch (B, C, H, W) in [0, 1] and a seeded
``torch.Generator`` and draws per-sample parameters, so one call transforms the whole
batch (one ``grid_sample`` for all geometric operations) instead of looping in Python.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _u(gen, n, lo, hi, device):
    # (n,) uniform draws in [lo, hi)
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    # theta (B, 2, 3) maps output to input coordinates in [-1, 1]; border padding keeps
    # black MNIST backgrounds black and does not invent black bars on photos.
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _identity(b, device):
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    return theta


def _flip(theta, gen, enabled):
    if enabled:
        sign = torch.where(torch.rand(len(theta), generator=gen, device=theta.device) < 0.5, -1.0, 1.0)
        theta[:, :, 0] = theta[:, :, 0] * sign[:, None]
    return theta


def weak(x: torch.Tensor, gen: torch.Generator, flip: bool = False,
         max_shift: float = 0.125) -> torch.Tensor:
    """Random translation up to ``max_shift`` of the side (+ horizontal flip if allowed)."""
    b, dev = len(x), x.device
    theta = _identity(b, dev)
    theta[:, 0, 2] = _u(gen, b, -2 * max_shift, 2 * max_shift, dev)  # [-1,1] spans 2
    theta[:, 1, 2] = _u(gen, b, -2 * max_shift, 2 * max_shift, dev)
    return _warp(x, _flip(theta, gen, flip))


def erase(x: torch.Tensor, gen: torch.Generator, prob: float, area=(0.02, 0.2),
          value: float | None = None) -> torch.Tensor:
    """Random erasing / cutout: one rectangle per sample with probability ``prob``.

    ``value=None`` fills with uniform noise (random erasing), a float fills a constant
    (cutout)."""
    b, _, h, w = x.shape
    dev = x.device
    a = _u(gen, b, area[0], area[1], dev)
    r = torch.exp(_u(gen, b, math.log(0.3), math.log(3.3), dev))
    eh = (torch.sqrt(a * r) * h).clamp(1, h)
    ew = (torch.sqrt(a / r) * w).clamp(1, w)
    cy = _u(gen, b, 0, 1, dev) * (h - eh)
    cx = _u(gen, b, 0, 1, dev) * (w - ew)
    ys = torch.arange(h, device=dev)[None, :]
    xs = torch.arange(w, device=dev)[None, :]
    my = (ys >= cy[:, None]) & (ys < (cy + eh)[:, None])  # (B, H)
    mx = (xs >= cx[:, None]) & (xs < (cx + ew)[:, None])  # (B, W)
    on = torch.rand(b, generator=gen, device=dev) < prob
    mask = (my[:, :, None] & mx[:, None, :] & on[:, None, None])[:, None]  # (B, 1, H, W)
    fill = torch.rand(x.shape, generator=gen, device=dev) if value is None else torch.full_like(x, value)
    return torch.where(mask, fill, x)


def _gray(x):
    # (B, 1, H, W) luminance
    if x.shape[1] == 1:
        return x
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _color_jitter(x, gen, strength=0.4, p=0.8):
    b, dev = len(x), x.device
    on = (torch.rand(b, generator=gen, device=dev) < p).float()[:, None, None, None]
    bright = 1 + on * _u(gen, b, -strength, strength, dev)[:, None, None, None]
    contrast = 1 + on * _u(gen, b, -strength, strength, dev)[:, None, None, None]
    x = x * bright
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    if x.shape[1] == 3:
        sat = 1 + on * _u(gen, b, -strength, strength, dev)[:, None, None, None]
        g = _gray(x)
        x = (x - g) * sat + g
        to_gray = (torch.rand(b, generator=gen, device=dev) < 0.2)[:, None, None, None]
        x = torch.where(to_gray, _gray(x).expand_as(x), x)
    return x.clamp(0, 1)


def contrastive(x: torch.Tensor, gen: torch.Generator, crop_scale=(0.5, 1.0),
                rotate_deg: float = 15.0, erase_prob: float = 0.5,
                flip: bool = False) -> torch.Tensor:
    """SimCLR/BYOL view: random resized crop + rotation (one affine warp), colour
    jitter, random erasing."""
    b, dev = len(x), x.device
    # 1. crop side fractions from area and aspect ratio (as RandomResizedCrop)
    area = _u(gen, b, crop_scale[0], crop_scale[1], dev)
    ratio = torch.exp(_u(gen, b, math.log(3 / 4), math.log(4 / 3), dev))
    sw = torch.sqrt(area * ratio).clamp(max=1.0)
    sh = torch.sqrt(area / ratio).clamp(max=1.0)
    # 2. rotation composed with the crop: theta = R(angle) @ diag(sw, sh)
    ang = _u(gen, b, -rotate_deg, rotate_deg, dev) * math.pi / 180
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sw, -sin * sh
    theta[:, 1, 0], theta[:, 1, 1] = sin * sw, cos * sh
    theta[:, 0, 2] = _u(gen, b, -1, 1, dev) * (1 - sw)
    theta[:, 1, 2] = _u(gen, b, -1, 1, dev) * (1 - sh)
    x = _warp(x, _flip(theta, gen, flip))
    # 3. photometric
    x = _color_jitter(x, gen)
    return erase(x, gen, erase_prob)


# RandAugment-style operations (Cubuk et al. 2020, FixMatch's variant with a random
# magnitude per sample). Geometric ones are composed into one affine matrix.
_GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
_PHOTOMETRIC = ("identity", "autocontrast", "brightness", "contrast", "sharpness",
                "posterize", "solarize")
RANDAUGMENT_OPS = _GEOMETRIC + _PHOTOMETRIC


def _autocontrast(x):
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    return ((x - lo) / (hi - lo).clamp(min=1e-3)).clamp(0, 1)


def _sharpness(x, factor):
    # blend with a 3x3 smoothed copy as PIL's ImageEnhance.Sharpness does
    c = x.shape[1]
    k = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=x.dtype, device=x.device) / 13
    blur = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(c, 1, 3, 3), groups=c)
    return (blur + factor * (x - blur)).clamp(0, 1)


def strong(x: torch.Tensor, gen: torch.Generator, flip: bool = False, n_ops: int = 2,
           cutout: float = 0.5) -> torch.Tensor:
    """FixMatch strong view: weak shift/flip, ``n_ops`` random RandAugment operations
    with random magnitudes, then cutout of up to ``cutout`` of the side."""
    b, dev = len(x), x.device
    ops = torch.randint(len(RANDAUGMENT_OPS), (b, n_ops), generator=gen, device=dev)
    has = [(ops == i).any(dim=1) for i in range(len(RANDAUGMENT_OPS))]  # per-op (B,) masks
    mag = _u(gen, b, 0.05, 0.95, dev)  # (B,)
    sgn = torch.where(torch.rand(b, generator=gen, device=dev) < 0.5, -1.0, 1.0)
    # 1. geometric: compose into one matrix
    theta = _identity(b, dev)
    theta[:, 0, 2] = _u(gen, b, -0.25, 0.25, dev)
    theta[:, 1, 2] = _u(gen, b, -0.25, 0.25, dev)
    m = torch.eye(3, device=dev).repeat(b, 1, 1)
    ang = has[0] * sgn * mag * (30 * math.pi / 180)
    rot = torch.eye(3, device=dev).repeat(b, 1, 1)
    rot[:, 0, 0], rot[:, 0, 1] = torch.cos(ang), -torch.sin(ang)
    rot[:, 1, 0], rot[:, 1, 1] = torch.sin(ang), torch.cos(ang)
    m = m @ rot
    m[:, 0, 1] += has[1] * sgn * mag * 0.3
    m[:, 1, 0] += has[2] * sgn * mag * 0.3
    m[:, 0, 2] += has[3] * sgn * mag * 0.6  # 0.3 of the side = 0.6 in [-1, 1] units
    m[:, 1, 2] += has[4] * sgn * mag * 0.6
    theta = theta @ m
    x = _warp(x, _flip(theta, gen, flip))
    # 2. photometric, each op applied where a sample drew it
    base = len(_GEOMETRIC)
    m4 = mag[:, None, None, None]
    sel = lambda i: has[base + i][:, None, None, None]  # noqa: E731
    x = torch.where(sel(1), _autocontrast(x), x)
    x = torch.where(sel(2), (x * (0.05 + 1.9 * m4)).clamp(0, 1), x)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = torch.where(sel(3), ((x - mean) * (0.05 + 1.9 * m4) + mean).clamp(0, 1), x)
    x = torch.where(sel(4), _sharpness(x, 0.05 + 1.9 * m4), x)
    bits = (8 - (m4 * 4).floor())  # 4..8 bits
    levels = 2 ** bits
    x = torch.where(sel(5), torch.floor(x * (levels - 1) + 0.5) / (levels - 1), x)
    x = torch.where(sel(6) & (x >= m4), 1 - x, x)
    # 3. cutout with a grey square (FixMatch)
    side = _u(gen, b, 0.0, cutout, dev)
    return x if cutout <= 0 else _cutout(x, gen, side)


def _cutout(x, gen, side):
    b, _, h, w = x.shape
    dev = x.device
    cy = _u(gen, b, 0, h, dev)
    cx = _u(gen, b, 0, w, dev)
    half_h, half_w = side * h / 2, side * w / 2
    ys = torch.arange(h, device=dev)[None, :].float()
    xs = torch.arange(w, device=dev)[None, :].float()
    my = (ys >= (cy - half_h)[:, None]) & (ys < (cy + half_h)[:, None])
    mx = (xs >= (cx - half_w)[:, None]) & (xs < (cx + half_w)[:, None])
    mask = (my[:, :, None] & mx[:, None, :])[:, None]
    return torch.where(mask, torch.full_like(x, 0.5), x)
