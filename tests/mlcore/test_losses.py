import math

import torch

from mlcore.losses.byol import byol_loss
from mlcore.losses.fixmatch import fixmatch_loss
from mlcore.losses.nt_xent import nt_xent
from mlcore.losses.soft_ce import soft_cross_entropy


def naive_nt_xent(z1, z2, t):
    z = torch.cat([z1, z2])
    n = len(z)
    b = len(z1)
    total = 0.0
    for i in range(n):
        j = (i + b) % n
        cos = lambda a, c: float(torch.dot(z[a], z[c]) / (z[a].norm() * z[c].norm()))  # noqa: E731
        num = math.exp(cos(i, j) / t)
        den = sum(math.exp(cos(i, k) / t) for k in range(n) if k != i)
        total += -math.log(num / den)
    return total / n


def test_nt_xent_matches_naive():
    z1, z2 = torch.randn(5, 7), torch.randn(5, 7)
    for t in (0.1, 0.5, 1.0):
        assert abs(nt_xent(z1, z2, t).item() - naive_nt_xent(z1, z2, t)) < 1e-4


def test_nt_xent_low_for_aligned_views():
    z = torch.randn(8, 16)
    assert nt_xent(z, z + 0.01 * torch.randn(8, 16), 0.1) < nt_xent(z, torch.randn(8, 16), 0.1)


def test_byol_loss_matches_naive():
    p1, p2, t1, t2 = (torch.randn(6, 5) for _ in range(4))
    total = 0.0
    for i in range(6):
        for p, t in ((p1[i], t2[i]), (p2[i], t1[i])):
            total += float(((p / p.norm() - t / t.norm()) ** 2).sum())
    assert abs(byol_loss(p1, p2, t1, t2).item() - total / 6) < 1e-5
    assert byol_loss(p1, p2, p2, p1).abs().item() < 1e-5


def test_soft_cross_entropy_matches_naive():
    logits = torch.randn(4, 3)
    targets = torch.softmax(torch.randn(4, 3), 1)
    w = torch.tensor([1.0, 0.5, 0.0, 2.0])
    eps = 0.1
    logp = torch.log_softmax(logits, 1)
    want = 0.0
    for i in range(4):
        t = (1 - eps) * targets[i] + eps / 3
        want += float(w[i] * -(t * logp[i]).sum())
    got = soft_cross_entropy(logits, targets, w, smoothing=eps).item()
    assert abs(got - want / 4) < 1e-5
    hard = torch.tensor([0, 2, 1, 1])
    assert abs(soft_cross_entropy(logits, hard).item()
               - torch.nn.functional.cross_entropy(logits, hard).item()) < 1e-5


def test_fixmatch_masks_low_confidence():
    weak = torch.tensor([[10.0, 0.0], [0.1, 0.0]])  # confident, not confident
    strong = torch.randn(2, 2)
    loss, mask = fixmatch_loss(weak, strong, 0.95)
    assert mask.tolist() == [1.0, 0.0]
    want = torch.nn.functional.cross_entropy(strong[:1], torch.tensor([0])).item() / 2
    assert abs(loss.item() - want) < 1e-6
