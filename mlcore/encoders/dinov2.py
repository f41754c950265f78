"""DINOv2 ViT backbones (Oquab et al. 2023), our own implementation.

State-dict keys and shapes match the official torch hub checkpoints
(dl.fbaipublicfiles.com/dinov2/<name>/<name>_pretrain.pth): 518 px training resolution
(37x37 patches of 14 px), no register tokens, no block chunks. Positional embeddings are
interpolated bicubically to the input's patch grid as the official code does it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mlcore.encoders.catalog import PRETRAINED
from mlcore.encoders.spec import EncoderSpec

PATCH = 14
TRAIN_GRID = 37  # 518 px / 14
INTERPOLATE_OFFSET = 0.1  # the official hub models' scale-factor offset


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x):  # (B, N, D) -> (B, N, D)
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # (B, N, D) -> (B, N, D)
        b, n, d = x.shape
        # (B, N, 3*D) -> (3, B, heads, N, D/heads)
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, D/heads)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):  # (B, N, D) -> (B, N, D)
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, ls_init: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim, ls_init)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_ratio * dim)
        self.ls2 = LayerScale(dim, ls_init)

    def forward(self, x):  # (B, N, D) -> (B, N, D)
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int = PATCH, channels: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, patch, stride=patch)

    def forward(self, x):  # (B, C, H, W) -> (B, H/p * W/p, D)
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoV2(nn.Module):
    """(B, 3, H, W) ImageNet-normalised, H and W multiples of 14 -> final-norm class token (B, D)."""

    def __init__(self, dim: int, depth: int, heads: int, grid: int = TRAIN_GRID, ls_init: float = 1e-5):
        super().__init__()
        self.out_dim = dim
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))  # class + grid x grid
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # iBOT masking; unused at inference
        self.blocks = nn.ModuleList(Block(dim, heads, ls_init=ls_init) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self._init()

    def _init(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def pos_embed_for(self, gh: int, gw: int) -> torch.Tensor:
        """Positional embeddings (1, 1 + gh*gw, D) for a gh x gw patch grid."""
        pos = self.pos_embed
        m = math.isqrt(pos.shape[1] - 1)
        if gh == gw == m:
            return pos
        cls, grid = pos[:, :1], pos[:, 1:].float()
        d = grid.shape[-1]
        grid = grid.reshape(1, m, m, d).permute(0, 3, 1, 2)  # (1, D, M, M)
        # scale factor (g + 0.1) / M rather than a size, like the official hub models
        grid = F.interpolate(grid, scale_factor=((gh + INTERPOLATE_OFFSET) / m, (gw + INTERPOLATE_OFFSET) / m),
                             mode="bicubic", antialias=False)
        assert grid.shape[-2:] == (gh, gw), grid.shape
        grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, d).to(pos.dtype)  # (1, gh*gw, D)
        return torch.cat((cls, grid), dim=1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> final-norm tokens (B, 1 + H/14 * W/14, D), class token first."""
        b, _, h, w = x.shape
        if h % PATCH or w % PATCH:
            raise ValueError(f"DINOv2 input {h}x{w} is not a multiple of {PATCH} px")
        x = self.patch_embed(x)  # (B, N, D)
        x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)  # (B, 1 + N, D)
        x = x + self.pos_embed_for(h // PATCH, w // PATCH)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, x):  # (B, 3, H, W) -> (B, D)
        return self.tokens(x)[:, 0]


def _arch(dim: int, depth: int, heads: int):
    def make(**kwargs) -> nn.Module:
        return DinoV2(dim, depth, heads, **kwargs)
    return make


def _spec(name, dim, depth, heads):
    c = PRETRAINED[name]
    return EncoderSpec(name, c.family, out_dim=c.out_dim, arch=_arch(dim, depth, heads), input_size=c.input_size,
                       weight_files=c.weight_files, description=c.description)


SPECS = (
    _spec("dinov2_vits14", 384, 12, 6),
    _spec("dinov2_vitb14", 768, 12, 12),
)
