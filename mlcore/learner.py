"""``ActiveLearner``: the loop's state and its entry points, as the app runs them.

    learner = ActiveLearner(LearnerConfig(...), pool_images)       # uint8 (N, H, W[, C])
    learner.pretrain(progress=cb, time_budget_s=300)               # cold start, part 1
    first = learner.cold_start(10)                                 # typical + covering
    probs = learner.fast_update(labels)                            # after new labels
    queue = learner.rank(10, labels)                               # next items to ask
    learner.finetune(labels)                                       # slow path, debounced
    test_probs = learner.predict(test_images)                      # inductive guesses
    rows, oof = learner.heldout_probabilities(labels)              # out-of-fold, labelled rows
    learner.save(path, labels, meta={...}); learner = ActiveLearner.load(path, pool_images)

Changing the learner from outside (the web app) goes through methods, never attributes:

    learner = learner.with_pool(grown_images)    # images imported: same encoder, new graph
    learner.set_num_classes(n, cold_start_until) # classes changed: the head and probs go
    clone = learner.clone()                      # fine-tune the clone in a thread ...
    clone.finetune(labels, heldout=audits)       # ... judged on items it never trained on
    if clone.accepted: learner.adopt(clone)      # ... then take its encoder and graph
    clone.selection                              # the verdict (held-out counts, sign test)
    learner.has_encoder, learner.num_classes     # read-only
    learner.embeddings                           # read-only (N, D), None before pretraining

Labels are int arrays (N,) with -1 = unlabelled; optional soft labels (N, C) with
zero rows for "none". Every method takes arrays and returns arrays.
"""

from __future__ import annotations

import numpy as np
import torch

from mlcore.checkpoint import load_checkpoint, save_checkpoint
from mlcore.config import LearnerConfig
from mlcore.data import to_tensor
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.fast import fast_update
from mlcore.finetune import finetune
from mlcore.models.encoders import build_encoder
from mlcore.models.heads import ClassifierHead
from mlcore.pixelpool import PixelPool
from mlcore.pretrain import embed, pretrain
from mlcore.selection import compare, heldout_outcome, holdout_rows


def encoder_weights(state: dict, encoder: torch.nn.Module) -> dict:
    """The tensors of a checkpoint's state (``load_checkpoint(...)["state"]``) that fit
    ``encoder``: our "encoder" entry or a plain state dict ("model"), under the usual
    wrappers' prefixes, keeping only names and shapes the encoder has."""
    sd = state.get("encoder", state.get("model"))
    if not isinstance(sd, dict):
        return {}
    own = encoder.state_dict()
    for prefix in ("", "module.", "encoder.", "backbone.", "module.encoder."):
        cand = {k[len(prefix):]: v for k, v in sd.items() if isinstance(k, str) and k.startswith(prefix)}
        if any(k in own for k in cand):
            sd = cand
            break
    return {k: v for k, v in sd.items()
            if k in own and isinstance(v, torch.Tensor) and own[k].shape == v.shape}


class ActiveLearner(EmbeddingLearner):
    """An EmbeddingLearner whose encoder is trained on the pool's own pixels."""

    can_finetune = True

    def __init__(self, cfg: LearnerConfig, images, device=None):
        super().__init__(cfg, None, device)
        # (N, C, S, S) uint8: images (N, H, W[, C]) converted, a pool tensor already in that
        # layout, or a PixelPool reading batches from disk
        self.pool = (images.to(self.device) if isinstance(images, (torch.Tensor, PixelPool))
                     else to_tensor(images, cfg.encoder.input_size, self.device))
        self.encoder: torch.nn.Module | None = None
        self.head: ClassifierHead | None = None
        self.proj = None  # projection head of the slow path's contrastive term

    @property
    def has_encoder(self) -> bool:
        return self.encoder is not None

    # --- encoder ----------------------------------------------------------------------

    def init_from_checkpoint(self, path: str) -> list[str]:
        """Transfer learning: encoder weights from a local checkpoint (our format or a
        plain state dict, ``weights_only=True``); the classifier head is always new.
        Returns the encoder keys the checkpoint did not provide (e.g. new adapters)."""
        enc = build_encoder(self.cfg.encoder)
        sd = encoder_weights(load_checkpoint(path, map_location="cpu")["state"], enc)
        if not sd:
            raise ValueError(f"{path}: no tensor matches the {self.cfg.encoder.arch} encoder")
        missing = enc.load_state_dict(sd, strict=False).missing_keys
        self.encoder = enc.to(self.device)
        self.head = None
        self._refresh()
        return missing

    def pretrain(self, progress=None, time_budget_s: float | None = None, steps: int | None = None) -> np.ndarray:
        """Self-supervised pretraining on the pool (continues from transferred weights
        if any); then embeddings and graph. ``steps``: exactly this many optimisation steps
        (the benchmark's fixed work) instead of ``pretrain.epochs`` epochs. Returns
        embeddings (N, D)."""
        self.encoder, self.emb, self.proj = pretrain(
            self.pool, self.cfg.encoder, self.cfg.pretrain, progress, time_budget_s, self.device,
            self.encoder, return_projection=True, steps=steps)
        self.head = None
        self._refresh(embed_again=False)
        return self.emb

    def _refresh(self, embed_again: bool = True) -> None:
        self._set_embeddings(embed(self.encoder, self.pool) if embed_again else self.emb)

    # --- changes the app makes between steps -------------------------------------------

    def with_pool(self, images, known: np.ndarray | None = None) -> ActiveLearner:
        """A new learner on another pool (e.g. grown by an import) with this one's encoder,
        head and projection (shared, not copied). ``known`` as in ``with_embeddings``
        (which rows of ``images`` this learner already has): those keep their embeddings
        (the encoder is the same, in eval mode) and only the others are embedded, and the
        graph grows instead of being rebuilt. Without it the whole pool is embedded."""
        self._require_model()
        new = type(self)(self.cfg, images, self.device)
        new.encoder, new.head, new.proj = self.encoder, self.head, self.proj
        # the +1 here and the +1 of _set_embeddings keep the version the app's grow() gave
        new.version = self.version + 1
        if known is None:
            new._refresh()
            return new
        old_rows = self._old_rows(known, len(new.pool))
        emb = np.empty((len(new.pool), self.emb.shape[1]), dtype=self.emb.dtype)
        had = old_rows >= 0
        emb[had] = self.emb[old_rows[had]]
        fresh = np.flatnonzero(~had)
        if len(fresh):
            emb[fresh] = embed(self.encoder, new.pool[torch.from_numpy(fresh).to(new.pool.device)])
        grow_from = self._known_rows(known, emb)  # None (rebuild) when most of the pool is new
        new._set_embeddings(emb, None if grow_from is None else (self.graph, grow_from))
        return new

    def _forget_head(self) -> None:
        self.head = None

    def clone(self) -> ActiveLearner:
        """A learner to fine-tune in another thread while this one keeps serving: its own
        encoder, head and projection, and its own cold-start cache. Pool, embeddings,
        graph and probabilities are shared; the slow path replaces them, never writes into
        them."""
        import copy

        other = copy.copy(self)
        other.encoder = copy.deepcopy(self.encoder)
        other.head = copy.deepcopy(self.head)
        other.proj = copy.deepcopy(self.proj)
        other._spectral = {}
        return other

    def adopt(self, other: ActiveLearner) -> None:
        """Take a fine-tuned clone's encoder, head, projection, embeddings and graph; the
        probabilities are dropped (the next fast_update makes them on the new graph)."""
        if other.emb is None or other.graph is None or other.encoder is None:
            raise RuntimeError("The learner to adopt has no encoder or embeddings.")
        if len(other.emb) != len(self.pool):
            raise ValueError(f"Cannot adopt a learner of {len(other.emb)} pool items into one "
                             f"of {len(self.pool)}.")
        self.encoder, self.head, self.proj = other.encoder, other.head, other.proj
        self.emb, self.graph = other.emb, other.graph
        # past both versions: no cold-start cache of either may be taken for this graph
        self.version = max(self.version, other.version) + 1
        self.last = None

    def _require_model(self, need_probs: bool = False) -> None:
        """A clear error instead of an AttributeError on None deep inside a step."""
        if self.encoder is None or self.emb is None:
            raise RuntimeError("The learner has no encoder yet: call pretrain() or init_from_checkpoint() first.")
        super()._require_model(need_probs)

    # --- slow path ----------------------------------------------------------------------

    def finetune(self, labels: np.ndarray, soft_labels: np.ndarray | None = None,
                 progress=None, time_budget_s: float | None = None,
                 heldout: np.ndarray | None = None) -> np.ndarray:
        """Semi-supervised fine-tuning, then new embeddings, graph and fast update.

        With ``finetune.validate`` (the default) selection is honest (mlcore.selection):
        the labelled rows ``heldout`` (the app's audit items) or, when they are too few, a
        seeded random share of the labelled items are kept out of the fine-tuning
        entirely (their labels, soft labels and the pseudo-labels propagated from them),
        and the new encoder is adopted only if propagation over its graph beats the old
        graph on those items by more than the noise (paired sign tests on correctness or on
        the probability of the true class, ``mlcore.selection.compare``). With too few
        labels to hold out ``finetune.holdout_min`` items nothing is trained. Before,
        the new encoder was judged by k-fold propagation over the very labels it was
        trained on, and fine-tunes were accepted while test accuracy fell (MNIST, 40
        labels: 95.3% -> 94.4%). ``self.selection`` records the verdict.
        Returns the probabilities (N, C)."""
        self._require_model()
        ft, prop, c = self.cfg.finetune, self.cfg.propagation, self.cfg.num_classes
        self.selection = None
        if not ft.validate:
            self._train_encoder(labels, soft_labels, self.fast_update(labels, soft_labels), progress, time_budget_s)
            self._refresh()
            self.accepted = True
            return self.fast_update(labels, soft_labels)
        rows = holdout_rows(labels, ft.holdout_fraction, ft.holdout_min, self.cfg.seed, heldout)
        if len(rows) == 0:
            self.accepted = False
            self.selection = {"skipped": f"fewer than {2 * ft.holdout_min} labels: nothing honest to judge a fine-tune on"}
            return self.fast_update(labels, soft_labels)
        train = labels.copy()
        train[rows] = -1
        train_soft = None
        if soft_labels is not None:
            train_soft = soft_labels.copy()
            train_soft[rows] = 0
        truth = labels[rows]
        current = heldout_outcome(self.emb, self.graph, train, rows, truth, c, prop, train_soft)
        before = (self.encoder, self.head, self.proj, self.emb, self.graph)
        guide = fast_update(self.emb, self.graph, train, c, prop, train_soft)  # pseudo-labels without the held-out
        self._train_encoder(train, train_soft, guide.probs, progress, time_budget_s, guide.certainty)
        self._refresh()
        candidate = heldout_outcome(self.emb, self.graph, train, rows, truth, c, prop, train_soft)
        verdict = compare(current[0], candidate[0], ft.adopt_alpha, current[1], candidate[1])
        self.selection = verdict.as_dict()
        self.accepted = verdict.adopt
        if not verdict.adopt:
            self.encoder, self.head, self.proj, self.emb, self.graph = before
            self.version += 1
        return self.fast_update(labels, soft_labels)

    def _train_encoder(self, labels, soft_labels, probs, progress, time_budget_s, certainty=None) -> None:
        """The fine-tuning itself, on copies: the current encoder, head and projection stay
        untouched until the caller keeps the result."""
        import copy

        if certainty is None:
            certainty = self.last.certainty
        self.encoder, self.head, self.proj = finetune(
            self.pool, labels, copy.deepcopy(self.encoder), self.cfg.encoder, self.cfg.finetune,
            self.cfg.num_classes, copy.deepcopy(self.head), soft_labels, probs, certainty,
            progress, time_budget_s, self.device, copy.deepcopy(self.proj))

    # --- inference ----------------------------------------------------------------------

    def embed(self, images) -> np.ndarray:
        self._require_model()
        return embed(self.encoder, images, self.cfg.encoder, device=self.device)

    def predict(self, images) -> np.ndarray:
        """Inductive guesses for new images (M, C): they never enter the graph."""
        return self.predict_embeddings(self.embed(images))

    # --- persistence --------------------------------------------------------------------

    def snapshot(self) -> dict:
        """In-memory copy of the model state (e.g. to replay the loop from the same
        pretrained encoder with another strategy)."""
        import copy
        return {"encoder": copy.deepcopy(self.encoder), "head": copy.deepcopy(self.head),
                "proj": copy.deepcopy(self.proj),
                "emb": self.emb.copy(), "graph": self.graph, "version": self.version}

    def restore(self, snap: dict) -> None:
        import copy
        self.encoder = copy.deepcopy(snap["encoder"])
        self.head = copy.deepcopy(snap["head"])
        self.proj = copy.deepcopy(snap["proj"])
        self.emb, self.graph = snap["emb"].copy(), snap["graph"]
        self.version = snap["version"] + 1000 * (self.version // 1000 + 1)  # new cache key
        self.last = None

    def save(self, path: str, labels: np.ndarray | None = None, meta: dict | None = None) -> None:
        """Atomic checkpoint (see mlcore.checkpoint). ``meta``: extra primitives stored
        with the learner's own ("version" is always the learner's)."""
        self._require_model()
        state = {"encoder": self.encoder.state_dict()}
        if self.head is not None:
            state["head"] = self.head.state_dict()
        if self.proj is not None:
            state["proj"] = self.proj.state_dict()
        state.update(self._head_state())  # the embedding head (mlcore.head), when there is one
        save_checkpoint(path, self.cfg, state, self._arrays(labels, with_embeddings=True),
                        {**(meta or {}), "version": self.version})

    @classmethod
    def load(cls, path: str, images, device=None) -> ActiveLearner:
        ck = load_checkpoint(path)
        self = cls(ck["config"], images, device)
        self.encoder = build_encoder(self.cfg.encoder)
        self.encoder.load_state_dict(ck["state"]["encoder"])
        self.encoder.to(self.device).eval()
        if "head" in ck["state"]:
            self.head = ClassifierHead(self.encoder.out_dim, self.cfg.num_classes, self.cfg.encoder.dropout)
            self.head.load_state_dict(ck["state"]["head"])
            self.head.to(self.device)
        if "proj" in ck["state"]:
            from mlcore.models.heads import ProjectionHead
            self.proj = ProjectionHead(self.encoder.out_dim, self.encoder.out_dim, self.cfg.encoder.proj_dim)
            self.proj.load_state_dict(ck["state"]["proj"])
            self.proj.to(self.device)
        self._restore_arrays(ck, ck["arrays"]["emb"])
        return self
