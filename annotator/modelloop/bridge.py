"""The bridge: where the app meets mlcore (with `modelloop.results`, the only modules of
the app that import it).

It builds, resumes, grows and checkpoints a project's `ActiveLearner`, through its public
methods only (`with_pool`, `set_num_classes`, `save`, ...: never its attributes), from
the arrays `modelloop.arrays` makes of the database (images in pool_index order, labels,
soft labels). Results go back through `modelloop.results`: artifact files first
(atomically), then in one transaction the model version row, the ranked queue and the
trainer state. The project loop (`modelloop.project_loop`, driven by `modelloop.trainer`)
decides *when* to call these functions.
"""
import copy
import logging
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np
from django.conf import settings

from annotator.modelloop import backbone, baseline, pixels, shared
from annotator.modelloop.arrays import image_shape, ordered_class_ids, pool_rows, positions
from annotator.modelloop.backbone import Backbone
from annotator.modelloop.predictions import (
    POOL_INDEX_FILE,
)
from annotator.modelloop.results import new_artifact_dir, save_array, writing
from annotator.models import Item
from mlcore.checkpoint import load_checkpoint
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.learner import ActiveLearner, encoder_weights
from mlcore.presets import TYPICAL_LABELS_PER_CLASS, app_config

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "learner.pt"
EMBEDDINGS_FILE = "embeddings.npy"
MIN_POOL = 20  # fewer images than this: nothing to learn from yet


# --- the learner of one project ------------------------------------------------------------


@dataclass
class ProjectModel:
    """What a trainer keeps in memory for one project between steps: a self-supervised
    learner with the pool's pixels (`images`), or a pretrained `backbone` whose vectors
    live in an embedding `store` (no pixels in memory; `learner` is None until the pool
    is embedded)."""

    project_id: int
    learner: ActiveLearner | EmbeddingLearner | None
    item_ids: np.ndarray
    pool_index: np.ndarray
    images: object  # mlcore.pixelpool.PixelPool (self-supervised), or None (a backbone's store)
    side: int
    channels: int
    class_ids: list
    class_names: list
    base_checkpoint: str = ""  # the checkpoint whose encoder the learner runs
    labels_at_slow: int = 0
    config: object = None  # the LearnerConfig a backbone's learner is made with
    backbone: Backbone | None = None
    store: object = None  # mlcore.store.EmbeddingStore of the backbone
    paths: list = field(default_factory=list)  # image files in pool order (backbone)
    embedded: int = 0  # images embedded since the last version was written
    baseline: object = None  # modelloop.baseline.Baseline: the pixels beside the representation
    served: str = ""  # which one served the last guesses: encoder_name or baseline.PIXELS
    zero_shot: object = None  # mlcore.zeroshot.ZeroShot of a CLIP-like backbone, for class_names
    extra: dict = field(default_factory=dict)

    @property
    def size(self):
        return len(self.pool_index)

    @property
    def encoder_name(self):
        return self.backbone.name if self.backbone is not None else "self-supervised"

    def encoder_metrics(self):
        """{"encoder", "embedded"} for the next version's metrics; the count starts over."""
        embedded, self.embedded = self.embedded, 0
        return {"encoder": self.encoder_name, "embedded": embedded}


def resolve_device(name=None):
    """The torch device for a name ("cpu", "cuda:1"; None: TORCH_DEVICE, else CUDA when
    present). ValueError with the reason for a bad name or a missing GPU."""
    from mlcore.device import get_device

    return get_device(name)


def new_config(num_classes, side, channels, device):
    """The project's LearnerConfig: ``presets.app_config``, which ``mlcore.bench`` uses too."""
    return app_config(num_classes, side, channels, gpu=device.type == "cuda", seed=settings.TRAINER_SEED,
                      pretrain_epochs=settings.TRAINER_PRETRAIN_EPOCHS)


def build(project, device=None):
    """Images and a fresh (untrained) learner for the project's current pool, or, when the
    project gets a pretrained backbone (`backbone.choose`), the model to `embed_pool`. With
    an uploaded checkpoint of ours, the learner takes that checkpoint's encoder
    (architecture, widths, input size, channels) so that all of its weights fit."""
    item_ids, pool_index, paths = pool_rows(project)
    side, channels = image_shape(paths)
    class_ids, class_names = ordered_class_ids(project)
    if project.init_checkpoint:
        chosen = backbone.uploaded(project)
    else:
        chosen = backbone.choose(project, (side, channels))
    if chosen is not None:
        cfg = new_config(len(class_ids), side, 3, resolve_device(device))
        return ProjectModel(project.pk, None, item_ids, pool_index, None, side, 3, class_ids, class_names,
                            config=cfg, backbone=chosen, paths=paths)
    encoder_cfg = None
    if project.init_checkpoint:
        encoder_cfg = check_init_checkpoint(project, backbone.required_upload(project), (side, channels))["encoder"]
        channels = encoder_cfg.in_channels
    cfg = new_config(len(class_ids), side, channels, resolve_device(device))
    if encoder_cfg is not None:
        cfg.encoder = encoder_cfg
    images, _decoded = pixels.pixel_pool(project, item_ids, paths, side, channels, cfg.encoder.input_size)
    learner = ActiveLearner(cfg, pixels.for_learner(images), device)
    model = ProjectModel(project.pk, learner, item_ids, pool_index, images, side, channels, class_ids, class_names)
    model.embedded = model.size  # pretraining embeds every image
    return model


def embed_pool(project, model, generation, device=None, progress=None):
    """A backbone's model: embed what its store lacks, then the learner on the vectors."""
    model.store = backbone.open_store(project, model.backbone, generation)
    model.embedded += backbone.embed_missing(model.store, model.backbone, model.item_ids, model.paths,
                                             resolve_device(device), progress)
    model.learner = EmbeddingLearner(model.config, backbone.pool_embeddings(model.store, model.item_ids), device)


def refresh_zero_shot(model, device=None):
    """The text prototypes of a CLIP-like backbone for the model's current class names
    (computed again after classes were added, removed or renamed), or None: another
    encoder, or zero-shot guesses turned off (ZERO_SHOT_FADE_LABELS = 0)."""
    from mlcore.encoders import catalog
    from mlcore.zeroshot import ZeroShot

    b = model.backbone
    if b is None or settings.ZERO_SHOT_FADE_LABELS <= 0 or not catalog.PRETRAINED[b.name].zero_shot:
        model.zero_shot = None
        return None
    names = tuple(model.class_names)
    if model.zero_shot is None or model.zero_shot.class_names != names:
        model.zero_shot = ZeroShot.build(b.name, b.weights, names, resolve_device(device))
    return model.zero_shot


def check_init_checkpoint(project, path, shape=None):
    """What an uploaded checkpoint gives the project's encoder: {"encoder": EncoderConfig,
    "matched": tensors that fit, "total": tensors of the encoder, "classes": the class names
    it was trained with, if it says}. Loaded with weights_only=True (no pickled code runs).
    ValueError with the reason when it is not a checkpoint or nothing in it fits. `shape`
    (side, channels) of the pool's images, sampled when not given."""
    from mlcore.models.encoders import build_encoder

    try:
        ck = load_checkpoint(str(path))
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"This is not a PyTorch checkpoint that loads with weights_only=True ({reason}).") from None
    if ck["config"] is None:  # a plain state dict: a stock pretrained backbone's?
        stock = backbone.check_stock_weights(path)
        if stock is not None:
            return stock
    else:  # our export of a project on a pretrained backbone (its weights inside)?
        bundled = backbone.check_bundled_weights(path, ck)
        if bundled is not None:
            return bundled
    if ck["config"] is not None and hasattr(ck["config"], "encoder"):
        encoder_cfg = copy.deepcopy(ck["config"].encoder)
    else:
        if shape is None:
            _ids, _index, paths = pool_rows(project)
            if not paths:
                raise ValueError("Import images first: the encoder's input size depends on them.")
            shape = image_shape(paths)
        side, channels = shape
        encoder_cfg = new_config(max(1, project.classes.count()), side, channels, resolve_device("cpu")).encoder
    _check_encoder_config(encoder_cfg)
    try:
        encoder = build_encoder(encoder_cfg)
    except Exception as exc:  # noqa: BLE001 - a config from a newer or foreign version
        raise ValueError(f"The checkpoint's encoder configuration is not one this version can build ({exc}).") from None
    matched = encoder_weights(ck["state"], encoder)
    if not matched:
        raise ValueError(
            f"No tensor in this checkpoint fits the project's encoder ({encoder_cfg.arch}, "
            f"{encoder_cfg.in_channels} channel{'s' if encoder_cfg.in_channels != 1 else ''}): expected a checkpoint "
            "exported from a project of this app, or a state dict of the same architecture.")
    classes = ck["meta"].get("classes") if isinstance(ck["meta"], dict) else None
    return {"encoder": encoder_cfg, "architecture": encoder_cfg.arch, "matched": len(matched),
            "total": len(encoder.state_dict()), "classes": list(classes) if isinstance(classes, (list, tuple)) else None}


# Bounds on an uploaded checkpoint's declared encoder, checked before it is built: the config
# is data from the upload, and absurd widths would allocate gigabytes in the web process.
MAX_ENCODER_WIDTH = 4096
MAX_ENCODER_STAGES = 8
MAX_INPUT_SIZE = 512


def _check_encoder_config(cfg):
    widths = tuple(getattr(cfg, "widths", ()) or ())
    problems = []
    if cfg.in_channels not in (1, 3):
        problems.append(f"{cfg.in_channels} input channels (1 or 3 are supported)")
    if not 8 <= int(cfg.input_size) <= MAX_INPUT_SIZE:
        problems.append(f"input size {cfg.input_size} (8 to {MAX_INPUT_SIZE})")
    if len(widths) > MAX_ENCODER_STAGES or any(not 1 <= int(w) <= MAX_ENCODER_WIDTH for w in widths):
        problems.append(f"widths {widths} (at most {MAX_ENCODER_STAGES} stages of 1 to {MAX_ENCODER_WIDTH})")
    if not 1 <= int(cfg.proj_dim) <= MAX_ENCODER_WIDTH or not 1 <= int(cfg.adapter_dim) <= MAX_ENCODER_WIDTH:
        problems.append("projection or adapter size out of range")
    if problems:
        raise ValueError(f"The checkpoint declares an encoder this app does not build: {'; '.join(problems)}.")


def load_init_checkpoint(project, model):
    """Transfer learning: the uploaded encoder's weights, then embeddings and kNN graph."""
    model.learner.init_from_checkpoint(str(backbone.required_upload(project)))


def resume(project, version, device=None):
    """The learner of a saved version (encoder, embeddings, graph), grown to today's pool."""
    checkpoint = shared.file(version.checkpoint)  # this machine's, or the bucket's copy
    index_file = shared.file(f"{PurePosixPath(version.checkpoint).parent}/{POOL_INDEX_FILE}")
    if checkpoint is None or index_file is None:
        raise FileNotFoundError(f"The files of checkpoint {version.checkpoint} are neither here nor in the bucket.")
    saved_index = np.load(index_file)
    item_ids, pool_index, paths = pool_rows(project)
    ck = load_checkpoint(checkpoint)
    meta = ck["meta"]
    side, channels = int(meta["side"]), int(meta["channels"])
    class_ids, class_names = ordered_class_ids(project)
    rows = np.searchsorted(pool_index, saved_index)
    if len(saved_index) and (rows.max() >= len(pool_index) or not np.array_equal(pool_index[rows], saved_index)):
        raise ValueError(f"Checkpoint {version.checkpoint} names images that are no longer in the pool.")
    if meta.get("learner") == "embedding":
        return _resume_backbone(project, version, meta, (item_ids, pool_index, paths), rows, device, checkpoint)
    images, _decoded = pixels.pixel_pool(project, item_ids, paths, side, channels, ck["config"].encoder.input_size)
    saved = images.subset(rows)
    learner = ActiveLearner.load(str(checkpoint), pixels.for_learner(saved), device)
    model = ProjectModel(project.pk, learner, item_ids[rows], saved_index, saved, side, channels,
                         class_ids, class_names, base_checkpoint=version.checkpoint)
    grown = (lambda: grow(model, item_ids, pool_index, images)) if len(pool_index) != len(saved_index) else None
    return _resumed(model, version, class_ids, class_names, grown)


def _resumed(model, version, class_ids, class_names, grow_to_pool=None):
    """The last steps of a resume, for both kinds of model: the pixel baseline, today's
    pool (`grow_to_pool`, when it changed) and classes."""
    model.labels_at_slow = version.labels_used
    baseline.attach(model)
    if grow_to_pool is not None:
        grow_to_pool()
    sync_classes(model, class_ids, class_names)
    return model


def _resume_backbone(project, version, meta, pool, rows, device, checkpoint):
    """A backbone's saved version: its store (nothing to embed after a plain restart), the
    saved graph, then today's pool."""
    item_ids, pool_index, paths = pool
    weights = backbone.uploaded_file(project) or backbone.find_weights(meta["encoder"])
    if weights is None or weights.name != meta.get("weights"):
        raise ValueError(f"The weights file {meta.get('weights')} of the {meta['encoder']} encoder is gone.")
    chosen = Backbone(meta["encoder"], weights)
    class_ids, class_names = ordered_class_ids(project)
    model = ProjectModel(project.pk, None, item_ids[rows], pool_index[rows], None, int(meta["side"]), 3,
                         class_ids, class_names, base_checkpoint=version.checkpoint, backbone=chosen,
                         paths=[paths[r] for r in rows])
    model.store = backbone.open_store(project, chosen, version.generation)
    model.embedded += backbone.embed_missing(model.store, chosen, model.item_ids, model.paths, resolve_device(device))
    model.learner = EmbeddingLearner.load(str(checkpoint),
                                          backbone.pool_embeddings(model.store, model.item_ids), device)
    model.config = model.learner.cfg
    grown = (lambda: _grow_embedded(model, item_ids, pool_index, paths)) if len(pool_index) != len(rows) else None
    return _resumed(model, version, class_ids, class_names, grown)


def _grow_embedded(model, item_ids, pool_index, paths):
    """New images for a backbone: embed only those, then a graph of the grown pool."""
    model.embedded += backbone.embed_missing(model.store, model.backbone, item_ids, paths, model.learner.device)
    known = positions(model.item_ids, item_ids, missing=-1)  # the graph grows instead of being rebuilt
    model.learner = model.learner.with_embeddings(backbone.pool_embeddings(model.store, item_ids), known=known)
    old_ids = model.item_ids
    model.item_ids, model.pool_index, model.paths = item_ids, pool_index, paths
    baseline.grow(model, old_ids)


def grow(model, item_ids, pool_index, images):
    """New images were imported: embed only those with the current encoder; the graph grows."""
    known = positions(model.item_ids, item_ids, missing=-1)
    learner = model.learner.with_pool(pixels.for_learner(images), known=known)
    old_ids = model.item_ids
    model.learner, model.item_ids, model.pool_index, model.images = learner, item_ids, pool_index, images
    model.embedded += int((known < 0).sum())
    baseline.grow(model, old_ids)


def sync_classes(model, class_ids, class_names):
    """Classes added, removed or reordered: the encoder stays, the class-specific parts go."""
    if class_ids == model.class_ids and model.learner.num_classes == len(class_ids):
        model.class_names = class_names
        return
    model.learner.set_num_classes(len(class_ids), cold_start_until=TYPICAL_LABELS_PER_CLASS * len(class_ids))
    baseline.sync_classes(model)
    model.class_ids, model.class_names = class_ids, class_names


def refresh_pool(project, model):
    """Bring the in-memory pool and classes up to date with the database; True if it changed."""
    changed = False
    count = Item.objects.filter(project=project).count()
    if count != model.size and model.backbone is not None:
        _grow_embedded(model, *pool_rows(project))
        changed = True
    elif count != model.size:
        item_ids, pool_index, paths = pool_rows(project)
        images, _decoded = pixels.pixel_pool(project, item_ids, paths, model.side, model.channels,
                                             model.learner.cfg.encoder.input_size)  # decodes only the new ones
        grow(model, item_ids, pool_index, images)
        changed = True
    class_ids, class_names = ordered_class_ids(project)
    if class_ids != model.class_ids:
        sync_classes(model, class_ids, class_names)
        changed = True
    elif class_names != model.class_names:  # renamed: guesses must carry the new names
        changed = True
    model.class_names = class_names
    return changed


# --- the steps --------------------------------------------------------------------------------


def checkpoint_files(project, model, kind, labels):
    """Checkpoint + embeddings + pool index in a new folder; returns its relative path.
    The checkpoint's meta carries what `resume` reads back ("side", "channels", "classes",
    "pool_index_file"; the learner adds its "version")."""
    folder = new_artifact_dir(project, kind)
    learner = model.learner
    with writing(folder, "the new model checkpoint") as base:
        save_array(base / POOL_INDEX_FILE, model.pool_index)
        save_array(base / EMBEDDINGS_FILE, learner.embeddings.astype(np.float32))
        meta = {"classes": list(model.class_names), "side": model.side, "channels": model.channels,
                "pool_index_file": POOL_INDEX_FILE}
        if model.backbone is not None:  # what `resume` needs to find the same vectors again
            meta.update(encoder=model.backbone.name, weights=model.backbone.weights.name)
        learner.save(str(base / CHECKPOINT_FILE), labels=labels, meta=meta)
    return f"{folder}/{CHECKPOINT_FILE}"


