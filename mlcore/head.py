"""The inductive head on the cached embeddings, and how much of it to serve.

Propagation alone only knows the kNN graph: where the graph has wrong edges its errors stay
however many labels arrive. The head is a small classifier (linear, or one hidden layer)
with input dropout on the unit embeddings, trained on

* the human labels (soft rows from overlapping answers as soft targets), each class
  weighing the same, and
* propagation's pseudo-labels on unlabelled items (hard, Iscen et al. 2019), weighted by
  propagation's certainty (1 - H / log C) and by 1 / (pseudo-class count),

by AdamW for a fixed number of steps (every labelled item and a seeded sample of
unlabelled ones per step). The served probabilities are (1 - w) propagation + w head with
w from ``HeadConfig.weights``, chosen on labelled items that neither propagation nor the
head saw: k folds of the labels (each fold's labels hidden from propagation, from the
pseudo-labels it makes and from the head's targets) or the caller's own held-out rows. A
w other than 0 is adopted only when it beats w = 0 on the same items by more than the noise
(the paired one-sided sign test of ``mlcore.selection``).

The full head and the fold heads are trained together as one ``HeadStack`` (members share
the input and the dropout mask; a linear stack is a single matrix product), so the k + 1
fits cost about one. BALD's MC samples are T dropout passes of the full head: a model of
the human labels, not a copy of propagation's output (Gal et al. 2017).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mlcore.config import HeadConfig
from mlcore.propagation import certainty_weights, probabilities
from mlcore.selection import compare


def one_thread(fn):
    """Run ``fn`` with one torch thread, then restore the count. The head's matrices are
    small: on the 2-core CPU a linear fit on 10k x 128 took 0.5-0.8 s with one thread and
    16-18 s with two while another process kept the second core busy (OpenMP workers
    waiting on each other at every small op)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)
    return wrapper


class HeadStack(nn.Module):
    """M independent heads evaluated together: logits (M, B, C) for inputs (B, D).
    ``hidden`` 0: linear (zero-initialised); otherwise Linear-ReLU-Linear."""

    def __init__(self, members: int, din: int, num_classes: int, hidden: int = 0,
                 dropout: float = 0.5, seed: int = 0):
        super().__init__()
        self.hidden, self.dropout = int(hidden), float(dropout)
        g = torch.Generator().manual_seed(seed)
        self.scale = math.sqrt(din)  # unit rows -> components of order 1
        if self.hidden:
            self.w1 = nn.Parameter(torch.randn(members, din, hidden, generator=g) * math.sqrt(2.0 / din))
            self.b1 = nn.Parameter(torch.zeros(members, 1, hidden))
            self.w2 = nn.Parameter(torch.randn(members, hidden, num_classes, generator=g) / math.sqrt(hidden))
        else:
            self.w2 = nn.Parameter(torch.zeros(members, din, num_classes))
        self.b2 = nn.Parameter(torch.zeros(members, 1, num_classes))

    @property
    def members(self) -> int:
        return self.w2.shape[0]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x * self.scale if mask is None else x * (mask * self.scale)
        if self.hidden:
            h = torch.relu(torch.einsum("bd,mdh->mbh", x, self.w1) + self.b1)
            return torch.baddbmm(self.b2, h, self.w2)
        return torch.einsum("bd,mdc->mbc", x, self.w2) + self.b2

    def member(self, m: int) -> HeadStack:
        """Member m alone, as a stack of one (its own copies of the weights)."""
        one = HeadStack.__new__(HeadStack)
        nn.Module.__init__(one)
        one.hidden, one.dropout, one.scale = self.hidden, self.dropout, self.scale
        for name, p in self.named_parameters():
            setattr(one, name, nn.Parameter(p.detach()[m:m + 1].clone()))
        return one

    @one_thread
    @torch.no_grad()
    def probs(self, x: np.ndarray, chunk: int = 65_536) -> np.ndarray:
        """(M, N, C) softmax probabilities without dropout."""
        out = [self(torch.from_numpy(x[a:a + chunk])).softmax(-1) for a in range(0, len(x), chunk)]
        return torch.cat(out, 1).numpy()

    @one_thread
    @torch.no_grad()
    def mc_probs(self, x: np.ndarray, samples: int, seed: int = 0) -> np.ndarray:
        """(T, N, C) probabilities of member 0 under T input-dropout masks (inverted dropout,
        as in training): BALD's samples."""
        g = torch.Generator().manual_seed(seed)
        xt = torch.from_numpy(x)
        keep = 1.0 - self.dropout
        out = []
        for _ in range(samples):
            mask = (torch.rand(xt.shape, generator=g) < keep).float() / keep
            out.append(self(xt, mask)[0].softmax(-1))
        return torch.stack(out).numpy()

    def state(self) -> dict:
        return {k: v.detach().cpu() for k, v in self.state_dict().items()}

    @classmethod
    def from_state(cls, sd: dict, dropout: float) -> HeadStack:
        members, din, _ = sd["w1"].shape if "w1" in sd else sd["w2"].shape
        hidden = sd["w1"].shape[2] if "w1" in sd else 0
        head = cls(members, din, sd["w2"].shape[2], hidden, dropout)
        head.load_state_dict(sd)
        return head


@dataclass
class Targets:
    """What M members train on, over R training rows (the labelled rows first).

    soft (L, C): the human answers of the first L rows; label_w (M, L): member m's weight
    of each of them (0: not one of m's labels); pseudo (M, R) int: m's pseudo-class of each
    row; pseudo_w (M, R): its weight (0: no pseudo-label for m)."""
    rows: np.ndarray
    soft: np.ndarray
    label_w: np.ndarray
    pseudo: np.ndarray
    pseudo_w: np.ndarray


def balanced(classes: np.ndarray, weights: np.ndarray, num_classes: int) -> np.ndarray:
    """weights / (weighted count of each item's class among the items with weight > 0)."""
    on = weights > 0
    counts = np.bincount(classes[on], weights=np.ones(int(on.sum())), minlength=num_classes)
    return (weights / np.maximum(counts[classes], 1.0)).astype(np.float32)


def member_targets(Y: np.ndarray, lab: np.ndarray, pseudo_probs: list[np.ndarray],
                   hidden: list[np.ndarray], num_classes: int, pseudo_max: int,
                   seed: int) -> Targets:
    """Targets of one member per entry of ``pseudo_probs`` ((N, C) propagation made without
    ``hidden[m]``'s labels): labels are the rows ``lab`` of Y (N, C) except ``hidden[m]``,
    pseudo-labels (argmax, certainty x class balance) are every other row's. Unlabelled
    rows beyond ``pseudo_max`` are a seeded sample."""
    n = len(Y)
    unl = np.setdiff1d(np.arange(n), lab)
    if len(unl) > pseudo_max:
        unl = np.sort(np.random.default_rng(seed).choice(unl, pseudo_max, replace=False))
    rows = np.concatenate([lab, unl])
    soft = Y[lab]
    m_count = len(pseudo_probs)
    label_w = np.ones((m_count, len(lab)), np.float32)
    pseudo = np.zeros((m_count, len(rows)), np.int64)
    pseudo_w = np.zeros((m_count, len(rows)), np.float32)
    label_class = soft.argmax(1)
    for m, (p, h) in enumerate(zip(pseudo_probs, hidden)):
        is_hidden = np.isin(lab, h)
        label_w[m, is_hidden] = 0.0
        label_w[m] = balanced(label_class, label_w[m], num_classes)
        pr = p[rows]
        w = certainty_weights(pr)
        w[:len(lab)][~is_hidden] = 0.0  # m's own labels are not pseudo-labels
        pseudo[m] = pr.argmax(1)
        pseudo_w[m] = balanced(pseudo[m], w, num_classes)
    return Targets(rows, soft.astype(np.float32), label_w, pseudo, pseudo_w)


@one_thread
def train_stack(emb: np.ndarray, t: Targets, num_classes: int, cfg: HeadConfig, seed: int = 0) -> HeadStack:
    """AdamW for ``cfg.steps`` steps; each step sees every labelled row and ``cfg.batch``
    seeded unlabelled rows. Member m's loss: the weighted mean cross-entropy on its labels
    plus ``cfg.pseudo_weight`` x the weighted mean cross-entropy on its pseudo-labels."""
    g = torch.Generator().manual_seed(seed)
    n_lab = len(t.soft)
    head = HeadStack(len(t.label_w), emb.shape[1], num_classes, cfg.hidden, cfg.dropout, seed)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_all = torch.from_numpy(np.ascontiguousarray(emb[t.rows]))
    soft = torch.from_numpy(t.soft)
    label_w = torch.from_numpy(t.label_w)
    pseudo = torch.from_numpy(t.pseudo)
    pseudo_w = torch.from_numpy(t.pseudo_w)
    n_unl = len(t.rows) - n_lab
    keep = 1.0 - cfg.dropout
    lw_sum = label_w.sum(1).clamp(min=1e-12)  # (M,)
    for _ in range(cfg.steps):
        if n_unl > cfg.batch:
            pick = torch.cat([torch.arange(n_lab), n_lab + torch.randperm(n_unl, generator=g)[:cfg.batch]])
        else:
            pick = torch.arange(len(t.rows))
        x = x_all[pick]
        mask = (torch.rand(x.shape, generator=g) < keep).float() / keep
        logp = head(x, mask).log_softmax(-1)  # (M, B, C)
        loss_lab = -(label_w * (logp[:, :n_lab] * soft).sum(-1)).sum(1) / lw_sum
        pw = pseudo_w[:, pick]
        ce = -logp.gather(2, pseudo[:, pick, None]).squeeze(2)  # (M, B)
        loss_pseudo = (pw * ce).sum(1) / pw.sum(1).clamp(min=1e-12)
        loss = (loss_lab + cfg.pseudo_weight * loss_pseudo).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval()


@dataclass
class Choice:
    """The mixing weight chosen on held-out labels, and the evidence."""
    w: float
    heldout: int  # held-out items scored
    accuracy: dict = field(default_factory=dict)  # candidate w -> held-out accuracy
    verdict: dict | None = None  # best w against w = 0 (mlcore.selection.Verdict)
    source: str = "folds"  # "folds" or "given" (the caller's held-out rows)

    def as_dict(self) -> dict:
        return {"w": self.w, "heldout": self.heldout, "source": self.source,
                "accuracy": {str(k): v for k, v in self.accuracy.items()}, "verdict": self.verdict}


def choose_weight(prop: np.ndarray, head: np.ndarray, truth: np.ndarray, cfg: HeadConfig,
                  source: str = "folds") -> Choice:
    """w from ``cfg.weights`` by held-out accuracy of (1 - w) prop + w head (ties: the
    smaller w); kept only if the sign test puts it above w = 0 (else w = 0)."""
    if len(truth) < cfg.min_heldout:
        return Choice(0.0, len(truth), source=source)
    correct = {float(w): ((1 - w) * prop + w * head).argmax(1) == truth for w in sorted(cfg.weights)}
    accuracy = {w: round(float(c.mean()), 4) for w, c in correct.items()}
    base = correct.get(0.0, prop.argmax(1) == truth)
    best = max(correct, key=lambda w: (int(correct[w].sum()), -w))
    if best == 0.0:
        return Choice(0.0, len(truth), accuracy, None, source)
    verdict = compare(base, correct[best], cfg.adopt_alpha)
    return Choice(best if verdict.adopt else 0.0, len(truth), accuracy, verdict.as_dict(), source)


def mix(prop: np.ndarray, head: np.ndarray, w: float) -> np.ndarray:
    if w == 0.0:
        return prop
    p = (1 - w) * prop + w * head
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def fold_probabilities(helds: list[np.ndarray], Z: np.ndarray, labels: np.ndarray,
                       num_classes: int) -> list[np.ndarray]:
    """(N, C) propagation probabilities of each fold (its columns of Z), with the labels
    it kept clamped (as the fast path clamps them)."""
    out = []
    for f, held in enumerate(helds):
        p = probabilities(Z[:, f * num_classes:(f + 1) * num_classes])
        keep = labels >= 0
        keep[held] = False
        p[keep] = np.eye(num_classes, dtype=np.float32)[labels[keep]]
        out.append(p)
    return out


@dataclass
class HeadFit:
    """One fast update's head: ``head`` (a stack of one), the weight ``w`` it is served with,
    and, when folds ran, the served predictor's out-of-fold probabilities."""
    head: HeadStack
    w: float
    choice: Choice | None
    oof: tuple | None = None  # (rows, probs (L, C)) of the served mix; None: not computed
    parts: tuple | None = None  # (rows, propagation's (L, C), the fold heads' (L, C)) behind ``oof``
    version: int = -1  # the learner's embedding version it was fitted on
    key: tuple | None = None  # (labels digest, folds, max_items) of ``oof``
    labelled: np.ndarray | None = None  # the rows labelled when it was fitted


def fit(emb: np.ndarray, labels: np.ndarray, Y: np.ndarray, prop: np.ndarray, num_classes: int,
        cfg: HeadConfig, seed: int = 0, helds: list[np.ndarray] | None = None,
        Z: np.ndarray | None = None, given: int = 0) -> HeadFit:
    """The full head (trained on Y's labelled rows and ``prop``'s pseudo-labels) and, with
    ``helds``/``Z`` from ``mlcore.fast.fold_propagation``, one head per fold trained
    without that fold's labels and on that fold's pseudo-labels, in the same stack; the
    weight w chosen on the folds' held-out labels, or on the last ``given`` entries of
    ``helds`` (the caller's own held-out rows) when given."""
    lab = np.flatnonzero(Y.sum(1) > 0)
    helds = helds or []
    pseudo_probs = [prop, *(fold_probabilities(helds, Z, labels, num_classes) if helds else [])]
    hidden = [np.zeros(0, np.int64), *helds]
    t = member_targets(Y, lab, pseudo_probs, hidden, num_classes, cfg.pseudo_max, seed)
    stack = train_stack(emb, t, num_classes, cfg, seed)
    full = stack.member(0)
    if not helds:
        return HeadFit(full, 0.0, None)
    heads = [stack.member(m + 1).probs(emb[h])[0] for m, h in enumerate(helds)]
    # the folds' own probabilities of their held-out rows are propagation's, unclamped
    props = [probabilities(Z[h, m * num_classes:(m + 1) * num_classes]) for m, h in enumerate(helds)]
    k = len(helds) - given
    if given:
        rows = np.concatenate(helds[k:])
        choice = choose_weight(np.concatenate(props[k:]), np.concatenate(heads[k:]), labels[rows], cfg, "given")
    else:
        rows = np.concatenate(helds[:k])
        choice = choose_weight(np.concatenate(props[:k]), np.concatenate(heads[:k]), labels[rows], cfg)
    oof = parts = None
    if k:
        rows = np.concatenate(helds[:k])
        order = np.argsort(rows, kind="stable")
        prop_oof, head_oof = np.concatenate(props[:k])[order], np.concatenate(heads[:k])[order]
        oof = (rows[order], mix(prop_oof, head_oof, choice.w))
        parts = (rows[order], prop_oof, head_oof)
    return HeadFit(full, choice.w, choice, oof, parts)
