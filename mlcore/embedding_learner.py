"""``EmbeddingLearner``: everything downstream of the embeddings, for any encoder.

    learner = EmbeddingLearner(cfg, emb)          # unit rows (N, D) from any encoder
    first = learner.cold_start(10)                # typical + covering
    probs = learner.fast_update(labels)           # propagation (+ the head, when it wins)
    queue = learner.rank(10, labels)              # next items to ask
    rows, oof = learner.heldout_probabilities(labels)
    learner = learner.with_embeddings(grown)      # images imported: new graph
    learner.save(path, labels, meta={...}); EmbeddingLearner.load(path, emb)

It never sees pixels: a frozen pretrained backbone embeds the pool once (the app keeps the
vectors in an ``mlcore.store.EmbeddingStore``) and this learner works on the vectors.
``mlcore.learner.ActiveLearner`` extends it with an encoder trained on the pool's pixels
(self-supervised pretraining, fine-tuning).

Labels are int arrays (N,) with -1 = unlabelled; optional soft labels (N, C) with zero
rows for "none".
"""

from __future__ import annotations

import copy

import numpy as np

from mlcore.acquisition.coldstart import cold_start
from mlcore.acquisition.rank import rank
from mlcore.checkpoint import load_checkpoint, save_checkpoint
from mlcore.config import LearnerConfig
from mlcore.device import get_device
from mlcore.fast import (
    HELDOUT_ALL_FOLDS_MAX,
    FastResult,
    fast_update,
    fold_propagation,
    heldout_probabilities,
)
from mlcore.head import HeadFit, HeadStack, mix
from mlcore.head import fit as fit_head
from mlcore.multilabel import heldout_sets, propagate_sets, rank_sets, set_uncertainty
from mlcore.propagation import (
    Graph,
    affinity,
    certainty_weights,
    check_labels,
    grow_graph,
    knn_graph,
    knn_predict,
    label_matrix,
    normalize_graph,
)


def unit_rows(emb: np.ndarray) -> np.ndarray:
    """float32 copy of (N, D) with L2-normalised rows (zero rows stay zero)."""
    emb = np.asarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.maximum(norms, 1e-12)


class EmbeddingLearner:
    can_finetune = False  # no encoder of its own to train

    def __init__(self, cfg: LearnerConfig, emb: np.ndarray | None = None, device=None):
        self.cfg = cfg
        self.device = get_device(device)  # clear ValueError for a bad name / missing CUDA
        self.emb: np.ndarray | None = None  # (N, D) unit embeddings of the pool
        self.graph: Graph | None = None
        self.last: FastResult | None = None
        self.version = 0  # bumped whenever the embeddings (hence the graph) change
        self.accepted: bool | None = None  # did the last slow path keep its new encoder?
        self.selection: dict | None = None  # and why (mlcore.selection.Verdict as a dict)
        self._spectral: dict = {}  # cold-start eigenvectors of the current graph
        self.labels: np.ndarray | None = None  # the labels a loaded checkpoint was saved with
        self.fit: HeadFit | None = None  # the embedding head of the last fast update (mlcore.head)
        self.prop_probs: np.ndarray | None = None  # propagation's own probabilities (N, C)
        self._inputs: tuple | None = None  # (labels, soft labels) of the last fast update
        if emb is not None:
            self._set_embeddings(unit_rows(emb))

    def _set_embeddings(self, emb: np.ndarray, grow_from: tuple | None = None) -> None:
        """New embeddings (N, D): a new kNN graph and a new version (cache key).
        ``grow_from`` (graph, old_rows): grow that graph (``mlcore.propagation.grow_graph``)
        instead of building one from scratch."""
        p = self.cfg.propagation
        self.emb = emb
        if grow_from is not None:
            self.graph = grow_graph(grow_from[0], emb, grow_from[1], p.k, p.gamma, p.exact_max,
                                    self.device.type, p.grow_exact_pairs)
        else:
            self.graph = knn_graph(emb, p.k, p.gamma, p.exact_max, self.device.type)
        self.version += 1

    @property
    def has_features(self) -> bool:
        return self.emb is not None

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    @property
    def embeddings(self) -> np.ndarray | None:
        """Unit embeddings (N, D) of the pool, None before there are any. The learner's own
        array (not a copy): read it, never write into it."""
        return self.emb

    def _require_model(self, need_probs: bool = False) -> None:
        """A clear error instead of an AttributeError on None deep inside a step."""
        if self.emb is None:
            raise RuntimeError("The learner has no embeddings yet.")
        if need_probs and self.last is None:
            raise RuntimeError("No probabilities yet: call fast_update(labels) first.")

    # --- changes between steps ------------------------------------------------------------

    def with_embeddings(self, emb: np.ndarray, known: np.ndarray | None = None) -> EmbeddingLearner:
        """A learner on another pool's embeddings (e.g. grown by an import), same config.

        ``known`` says which rows of ``emb`` this learner already has, so that its kNN graph
        is grown (new rows searched, old lists updated) instead of rebuilt: either a bool
        mask (N_new,) whose True rows are this learner's rows in their current order, or an
        int array (N_new,) with each row's position in this learner's pool and -1 for new
        items (rows of this pool it omits are dropped). Known rows must carry unchanged
        embeddings (same encoder); when they do not, or when more than
        ``propagation.grow_max_new`` of the new pool would need a fresh search, the graph
        is rebuilt from scratch."""
        new = EmbeddingLearner(self.cfg, None, self.device)
        new.version = self.version
        emb = unit_rows(emb)
        old_rows = self._known_rows(known, emb)
        new._set_embeddings(emb, None if old_rows is None else (self.graph, old_rows))
        return new

    def _known_rows(self, known, emb: np.ndarray) -> np.ndarray | None:
        """``with_embeddings``' ``known`` as old row per new row (-1 new); None: rebuild."""
        if known is None or self.graph is None:
            return None
        n = len(emb)
        old_rows = self._old_rows(known, n)
        if int((old_rows < 0).sum()) > self.cfg.propagation.grow_max_new * n:
            return None
        rows = np.where(old_rows >= 0)[0]
        for a in range(0, len(rows), 65_536):  # unchanged embeddings, checked in chunks
            r = rows[a:a + 65_536]
            if not np.allclose(emb[r], self.emb[old_rows[r]], atol=1e-5):
                return None
        return old_rows

    def _old_rows(self, known, n: int) -> np.ndarray:
        """``known`` (bool mask or positions, see ``with_embeddings``) as this learner's row
        for each of ``n`` new rows, -1 for new ones; ValueError when it does not fit."""
        known = np.asarray(known)
        if known.shape != (n,):
            raise ValueError(f"known must have shape ({n},), got {known.shape}")
        n_old = len(self.emb)
        if known.dtype == bool:
            if int(known.sum()) != n_old:
                raise ValueError(f"known marks {int(known.sum())} rows but the learner has {n_old}")
            old_rows = np.full(n, -1, np.int64)
            old_rows[known] = np.arange(n_old)
        else:
            old_rows = known.astype(np.int64)
            if old_rows.min(initial=0) < -1 or old_rows.max(initial=-1) >= n_old:
                raise ValueError(f"known positions must be in [-1, {n_old})")
            used = old_rows[old_rows >= 0]
            if len(np.unique(used)) != len(used):
                raise ValueError("known maps two rows to the same old row")
        return old_rows

    def set_num_classes(self, n: int, cold_start_until: int | None = None) -> None:
        """Classes added, removed or reordered: the probabilities (and any classifier head)
        go. ``cold_start_until`` (None: unchanged) is the label count below which ``auto``
        ranking keeps cold-starting."""
        if int(n) < 1:
            raise ValueError(f"num_classes must be at least 1, got {n}")
        # a private copy: the config object may be shared (other learners, clones, callers)
        cfg = copy.deepcopy(self.cfg)
        cfg.num_classes = int(n)
        if cold_start_until is not None:
            cfg.acquisition.cold_start_until = int(cold_start_until)
        self.cfg = cfg
        self.last = None
        self.fit = None
        self._forget_head()

    def _forget_head(self) -> None:
        """Subclasses with a classifier head drop it here."""

    # --- fast path ------------------------------------------------------------------------

    def heldout_probabilities(self, labels: np.ndarray, folds: int = 5,
                              max_items: int | None = HELDOUT_ALL_FOLDS_MAX) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-fold probabilities of the labelled items from the predictor this learner
        serves: (rows, probs (L, C)), see ``mlcore.fast.heldout_probabilities`` (one fold
        only on pools over ``max_items``). When the head is mixed in (``fit.w > 0``) these
        are (1 - w) propagation + w head with each fold's labels hidden from both; the
        last ``fast_update``'s are reused when labels, folds and graph are the same."""
        self._require_model()
        labels = check_labels(labels, self.cfg.num_classes, len(self.emb))
        f = self._current_fit()
        if f is not None and f.oof is not None and f.key == self._key(labels, folds, max_items):
            return f.oof
        rows, prop = heldout_probabilities(self.graph, labels, self.cfg.num_classes, self.cfg.propagation,
                                           folds=folds, seed=self.cfg.seed, max_items=max_items)
        if f is None or f.w == 0 or f.parts is None or f.labelled is None:
            return rows, prop  # propagation is what is served
        # a head fitted on fewer labels (``refit_growth``): each row's head opinion from a
        # head that never saw its label, the fold head it was held out from or, for rows
        # labelled since, the full head; rows neither holds are left out
        old_rows, _, old_head = f.parts
        in_old = np.isin(rows, old_rows)
        new = ~np.isin(rows, f.labelled)
        head = np.zeros_like(prop)
        head[in_old] = old_head[np.searchsorted(old_rows, rows[in_old])]
        if new.any():
            head[new] = f.head.probs(self.emb[rows[new]])[0]
        keep = in_old | new
        return rows[keep], mix(prop[keep], head[keep], f.w)

    @staticmethod
    def _key(labels: np.ndarray, folds: int, max_items: int | None) -> tuple:
        import hashlib
        return hashlib.sha1(labels.tobytes()).hexdigest(), int(folds), max_items

    def _current_fit(self) -> HeadFit | None:
        """The last fast update's head, if it was fitted on the current embeddings."""
        f = self.fit
        return f if f is not None and f.version == self.version else None

    def _fit_head(self, labels: np.ndarray, soft: np.ndarray | None, prop: np.ndarray,
                  heldout: np.ndarray | None, folds: int, max_items: int | None) -> HeadFit:
        """The head on these labels; with enough labels the fold heads and the weight w too
        (``mlcore.head.fit``), on ``heldout`` (labelled rows) when there are enough of them."""
        hc, c = self.cfg.head, self.cfg.num_classes
        Y = label_matrix(labels, c, soft)
        helds, Z, given = [], None, 0
        if hc.mix and int((labels >= 0).sum()) >= hc.min_heldout:
            extra = None
            if heldout is not None:
                lab = np.flatnonzero(labels >= 0)
                extra = np.intersect1d(np.asarray(heldout, dtype=np.int64), lab)
                if not hc.min_heldout <= len(extra) < len(lab):
                    extra = None
            helds, Z = fold_propagation(self.graph, labels, c, self.cfg.propagation, folds, self.cfg.seed,
                                        max_items, extra)
            given = int(extra is not None)
        f = fit_head(self.emb, labels, Y, prop, c, hc, self.cfg.seed, helds, Z, given)
        f.version, f.key = self.version, self._key(labels, folds, max_items)
        f.labelled = np.flatnonzero(labels >= 0)
        return f

    def cold_start(self, n: int, labels: np.ndarray | None = None) -> np.ndarray:
        self._require_model()
        if labels is not None:
            labels = check_labels(labels, self.cfg.num_classes, len(self.emb))
        labeled = None if labels is None else labels >= 0
        cache = self._spectral.setdefault(self.version, {})
        if len(self._spectral) > 1:  # only the current graph's decomposition is kept
            self._spectral = {self.version: cache}
        return cold_start(self.emb, self.graph, n, labeled, self.cfg.acquisition.cold_start_k,
                          self.cfg.seed, spectral_cache=cache, spectral_max=self.cfg.acquisition.spectral_max)

    def fast_update(self, labels: np.ndarray, soft_labels: np.ndarray | None = None,
                    heldout: np.ndarray | None = None) -> np.ndarray:
        """Probabilities (N, C) of all pool items: label propagation, mixed with the head on
        the embeddings (``mlcore.head``) by the weight w that wins on held-out labels (w = 0:
        propagation alone). ``heldout`` (labelled rows, e.g. the app's audit items): w is
        chosen on those instead of on folds of all labels. ``self.fit.choice`` says what
        was chosen and why."""
        self._require_model()
        labels = check_labels(labels, self.cfg.num_classes, len(self.emb))
        res = fast_update(self.emb, self.graph, labels, self.cfg.num_classes, self.cfg.propagation, soft_labels)
        previous = self._current_fit()
        self.prop_probs, self._inputs, self.fit = res.probs, (labels, soft_labels), None
        hc = self.cfg.head
        n_lab = int((labels >= 0).sum())
        if hc.mix and n_lab:
            if (previous is not None and previous.labelled is not None
                    and len(previous.labelled) <= n_lab < len(previous.labelled) * (1 + hc.refit_growth)
                    and (previous.choice is not None or n_lab < hc.min_heldout)):
                self.fit = previous  # few labels since: the last head and w, fresh propagation
            else:
                self.fit = self._fit_head(labels, soft_labels, res.probs, heldout, hc.folds, HELDOUT_ALL_FOLDS_MAX)
            if self.fit.w > 0:
                p = mix(res.probs, self.fit.head.probs(self.emb)[0], self.fit.w)
                Y = label_matrix(labels, self.cfg.num_classes, soft_labels)
                has = Y.sum(1) > 0
                p[has] = Y[has] / Y[has].sum(1, keepdims=True)  # answers stay the truth
                res = FastResult(p, certainty_weights(p), res.reached)
        self.last = res
        return self.last.probs

    @property
    def head_choice(self) -> dict | None:
        """What the last fast update chose (w, held-out accuracy of each candidate w, the
        number of held-out items, the sign test), for the app's metrics; None: no choice."""
        f = self._current_fit()
        return None if f is None or f.choice is None else f.choice.as_dict()

    def _mc_probs(self) -> np.ndarray:
        """BALD's (T, N, C) samples: MC dropout of the head trained on the human labels
        (+ certainty-weighted pseudo-labels), fitted now if the fast update did not."""
        f = self._current_fit()
        if f is None:
            labels, soft = self._inputs if self._inputs is not None else (self.labels, None)
            f = fit_head(self.emb, labels, label_matrix(labels, self.cfg.num_classes, soft),
                         self.prop_probs if self.prop_probs is not None else self.last.probs,
                         self.cfg.num_classes, self.cfg.head, self.cfg.seed)
        return f.head.mc_probs(self.emb, self.cfg.acquisition.mc_samples, self.cfg.seed)

    def rank(self, n: int, labels: np.ndarray, strategy: str | None = None,
             seed: int | None = None) -> np.ndarray:
        """Next n items to ask, best first. With no label yet (and a strategy other than
        random) this is the cold-start selection; ``auto`` keeps using it until
        ``acquisition.cold_start_until`` labels, then ranks with ``AUTO_STRATEGY``."""
        self._require_model()
        strategy = strategy or self.cfg.acquisition.strategy
        seed = self.cfg.seed if seed is None else seed
        labels = check_labels(labels, self.cfg.num_classes, len(self.emb))
        n_lab = int((labels >= 0).sum())
        if (n_lab == 0 and strategy != "random") or (
                strategy == "auto" and n_lab < self.cfg.acquisition.cold_start_until):
            return self.cold_start(n, labels)
        if self.last is None:
            self.fast_update(labels)
        return rank(self.last.probs, self.emb, labels, n, strategy, self.cfg.acquisition,
                    self._mc_probs, seed, graph=self.graph, propagation=self.cfg.propagation)

    def neighbours(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` neighbours of every pool row in the kNN graph, most similar first:
        rows (N, k') int64 and cosine similarities (N, k') float32, k' = min(k, the graph's k).
        Copies: the caller may keep or write them."""
        self._require_model()
        k = max(0, min(int(k), self.graph.idx.shape[1]))
        order = np.argsort(-self.graph.sims, axis=1, kind="stable")[:, :k]  # grown rows may be unsorted
        idx = np.take_along_axis(self.graph.idx, order, axis=1).astype(np.int64)
        sims = np.take_along_axis(self.graph.sims, order, axis=1).astype(np.float32)
        return idx, sims

    # --- multi-label pools (mlcore.multilabel: one-vs-rest propagation) ----------------------

    def fast_update_sets(self, targets: np.ndarray, labeled: np.ndarray) -> np.ndarray:
        """Per-class probabilities (N, C), each in [0, 1] on its own, for a pool whose answers
        are sets (targets (N, C), labeled (N,) bool)."""
        self._require_model()
        probs, reached = propagate_sets(self.graph, targets, labeled, self.cfg.num_classes, self.cfg.propagation)
        self.last = FastResult(probs, 1.0 - set_uncertainty(probs), reached)
        return probs

    def heldout_sets(self, targets: np.ndarray, labeled: np.ndarray, folds: int = 5,
                     max_items: int | None = HELDOUT_ALL_FOLDS_MAX) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-fold per-class probabilities of the answered items: (rows, probs (L, C))."""
        self._require_model()
        return heldout_sets(self.graph, targets, labeled, self.cfg.num_classes, self.cfg.propagation,
                            folds=folds, seed=self.cfg.seed, max_items=max_items)

    def rank_sets(self, n: int, targets: np.ndarray, labeled: np.ndarray, strategy: str | None = None,
                  seed: int | None = None) -> np.ndarray:
        """``rank`` for a multi-label pool: the cold start until answers arrive (``auto``: until
        ``acquisition.cold_start_until``), then per-class uncertainty (``mlcore.multilabel``)."""
        self._require_model()
        strategy = strategy or self.cfg.acquisition.strategy
        seed = self.cfg.seed if seed is None else seed
        labeled = np.asarray(labeled, bool)
        n_lab = int(labeled.sum())
        if (n_lab == 0 and strategy != "random") or (
                strategy == "auto" and n_lab < self.cfg.acquisition.cold_start_until):
            return self.cold_start(n, np.where(labeled, 0, -1))
        if self.last is None or self.last.probs.shape != (len(self.emb), self.cfg.num_classes):
            self.fast_update_sets(targets, labeled)
        return rank_sets(self.last.probs, self.emb, labeled, n, strategy, self.cfg.acquisition, seed)

    def predict_embeddings(self, emb: np.ndarray) -> np.ndarray:
        """Probabilities (M, C) for images outside the pool, from their embeddings: the kNN
        average of propagation's pool probabilities, mixed with the head's by the served w."""
        self._require_model(need_probs=True)
        p = self.cfg.propagation
        q = unit_rows(emb)
        f = self._current_fit()
        base = self.prop_probs if self.prop_probs is not None and f is not None else self.last.probs
        knn = knn_predict(q, self.emb, base, p.predict_k, p.gamma, p.exact_max, self.device.type)
        if f is None or f.w == 0:
            return knn
        return mix(knn, f.head.probs(q)[0], f.w)

    # --- persistence ----------------------------------------------------------------------

    def _arrays(self, labels: np.ndarray | None, with_embeddings: bool) -> dict:
        arrays = {"graph_idx": self.graph.idx, "graph_sims": self.graph.sims}
        if with_embeddings:
            arrays["emb"] = self.emb
        if self.last is not None:
            arrays["probs"] = self.last.probs
            f = self._current_fit()
            if f is not None and f.w > 0 and self.prop_probs is not None:
                arrays["prop_probs"] = self.prop_probs
        if labels is not None:
            arrays["labels"] = labels
        return arrays

    def save(self, path: str, labels: np.ndarray | None = None, meta: dict | None = None) -> None:
        """Atomic checkpoint of the graph (and probabilities, labels) without the embeddings,
        which live elsewhere (an EmbeddingStore): ``load`` takes them back."""
        self._require_model()
        save_checkpoint(path, self.cfg, self._head_state(), self._arrays(labels, with_embeddings=False),
                        {**(meta or {}), "version": self.version, "learner": "embedding"})

    def _head_state(self) -> dict:
        """{"emb_head": the served head's weights and its w} (empty without a head)."""
        import torch
        f = self._current_fit()
        if f is None:
            return {}
        return {"emb_head": {**f.head.state(), "mix_w": torch.tensor(float(f.w))}}

    def _restore_arrays(self, ck: dict, emb: np.ndarray) -> None:
        a = ck["arrays"]
        if len(a["graph_idx"]) != len(emb):
            raise ValueError(f"The checkpoint's graph has {len(a['graph_idx'])} rows but {len(emb)} "
                             "embeddings were given.")
        self.emb = emb
        S = normalize_graph(affinity(a["graph_idx"], a["graph_sims"], self.cfg.propagation.gamma))
        self.graph = Graph(a["graph_idx"], a["graph_sims"], S)
        if "probs" in a:
            self.last = FastResult(a["probs"], certainty_weights(a["probs"]), np.ones(len(a["probs"]), bool))
        self.version = int(ck["meta"].get("version", 0))
        self.labels = a.get("labels")
        self.prop_probs = a.get("prop_probs", a.get("probs"))
        sd = dict(ck["state"].get("emb_head") or {})
        if sd:
            w = float(sd.pop("mix_w", 0.0))
            self.fit = HeadFit(HeadStack.from_state(sd, self.cfg.head.dropout), w, None)
            self.fit.version, self.fit.key = self.version, None

    @classmethod
    def load(cls, path: str, emb: np.ndarray, device=None) -> EmbeddingLearner:
        ck = load_checkpoint(path)
        self = cls(ck["config"], None, device)
        self._restore_arrays(ck, unit_rows(emb))
        return self
