"""Projects embedded by a pretrained backbone (torchvision, DINOv2, timm, open_clip): which one, and an
embedding store that embeds each image once.

The backbone stays frozen: its features of every pool image go into an
`mlcore.store.EmbeddingStore` (float16, on disk, keyed by item id) in a folder per
(encoder, weights file, model generation) under this machine's CACHE_DIR (else ARTIFACTS_ROOT), and an `mlcore.embedding_learner.EmbeddingLearner`
does the rest on them. Images are decoded and resized (aspect kept, centre crop) in a
DataLoader, a batch at a time: the pool's pixels are never all in memory. A new import
embeds only its new images, a restart embeds none, a reset (a new generation) or another
encoder starts a new folder.
"""
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from annotator.modelloop import shared
from annotator.modelloop.arrays import open_image, positions
from annotator.modelloop.shared import cache_path
from annotator.models import Encoder
from mlcore.encoders import catalog

log = logging.getLogger(__name__)

# With `auto`, photos get a pretrained backbone: colour images of at least this side (the
# median short side of a sample). Grayscale pools (digits, scans, micrographs) and tiny
# icons keep self-supervised pretraining on their own pixels.
PHOTO_MIN_SIDE = 32


@dataclass(frozen=True)
class Backbone:
    name: str  # a registered pretrained encoder
    weights: Path  # its local weight file

    @property
    def identity(self):
        """What must match for stored vectors to be reused: the encoder and its file (name,
        size and modification time: `weights add` of other weights under the same name
        replaces the file, hence a new time, hence a new store)."""
        stat = self.weights.stat()
        return {"encoder": self.name, "weights": f"{self.weights.name}:{stat.st_size}:{stat.st_mtime_ns}"}


def choose(project, shape):
    """The backbone for the project (Backbone), or None for self-supervised pretraining.
    `shape` (side, channels) of its images. ValueError, saying how to add them, when the
    owner chose a backbone whose weights are not on this server."""
    if project.encoder == Encoder.SELF_SUPERVISED:
        return None
    if project.encoder == Encoder.AUTO:
        side, channels = shape
        if channels != 3 or side < PHOTO_MIN_SIDE:
            return None
        for name in catalog.PREFERENCE:
            path = find_weights(name) if catalog.usable(name) else None
            if path is not None:
                return Backbone(name, path)
        return None
    missing = catalog.missing_package(project.encoder)
    if missing is not None:
        raise ValueError(f"{missing} Install it, or choose another encoder in the settings.")
    path = find_weights(project.encoder)
    if path is None:
        dirs = catalog.weight_dirs(settings.WEIGHTS_DIR)
        files = " or ".join(catalog.PRETRAINED[project.encoder].weight_files)
        raise ValueError(
            f"The {project.encoder} encoder's weights are not on this server: looked for {files} in "
            f"{', '.join(str(d) for d in dirs)}. Add them with `python manage.py weights add {project.encoder} FILE` "
            "(or `weights fetch` on a machine with internet), or choose another encoder in the settings.")
    return Backbone(project.encoder, path)


def uploaded_file(project):
    """The project's uploaded starting checkpoint (a file: this machine's, or the copy from the
    bucket where it was published), or None."""
    return shared.file(project.init_checkpoint) if project.init_checkpoint else None


def required_upload(project):
    """uploaded_file for a project that has one: ValueError, saying so, when it is gone."""
    path = uploaded_file(project)
    if path is None:
        raise ValueError(f"The uploaded starting checkpoint {project.init_checkpoint_name or ''} is gone from this "
                         "server and from the bucket; upload it again, or reset the model without it.")
    return path


def check_stock_weights(path):
    """What an uploaded plain state dict is, when it is a stock pretrained backbone's
    (torchvision, DINOv2 hub, timm, open_clip; under the usual wrappers): {"architecture", "matched",
    "total", "backbone": name, ...} after a strict load of every backbone tensor, else None.
    ValueError naming the mismatched tensors when it looks like one but does not load."""
    from mlcore.encoders import registry

    found = registry.recognise(str(path))
    if found is None:
        return None
    name, matched, total = found
    registry.get(name).build(path)  # strict: every backbone tensor must load
    return {"encoder": None, "backbone": name, "architecture": name, "matched": matched, "total": total,
            "classes": None}


def check_bundled_weights(path, ck):
    """What an uploaded export of a backbone project is (`export_file`: our checkpoint with
    the backbone's weights inside), after a strict load of them; None for other files."""
    from mlcore.encoders import registry
    from mlcore.encoders.bundle import bundled_backbone

    name = bundled_backbone(ck)
    if name is None:
        return None
    registry.get(name).build(path)  # strict: every backbone tensor must load
    total = len(ck["state"]["backbone"])
    classes = ck["meta"].get("classes")
    return {"encoder": None, "backbone": name, "architecture": name, "matched": total, "total": total,
            "classes": list(classes) if isinstance(classes, (list, tuple)) else None}


def uploaded(project):
    """The backbone of the project's uploaded checkpoint when its file holds a pretrained
    backbone's weights (a stock state dict, or an export of a backbone project), else None
    (our own self-supervised checkpoint: the encoder starts from it)."""
    from mlcore.checkpoint import load_checkpoint
    from mlcore.encoders import registry
    from mlcore.encoders.bundle import bundled_backbone

    path = required_upload(project)
    ck = load_checkpoint(str(path))
    if ck["config"] is not None:  # our own format
        name = bundled_backbone(ck)
        return Backbone(name, path) if name is not None else None
    found = registry.recognise(ck["state"]["model"])
    return Backbone(found[0], path) if found is not None else None


EXPORT_FILE = "export.pt"


def export_file(project, version, checkpoint):
    """The file the model export streams for a version whose checkpoint is `checkpoint` (a
    Path): the checkpoint itself when the model has its own encoder (its weights are in it);
    for a pretrained backbone, a copy with the backbone's weights inside, written once next
    to the checkpoint, so the export loads (and starts a project) on a machine without the
    weights file. ValueError when that weights file is gone."""
    name = (version.metrics or {}).get("encoder")
    if name not in catalog.PRETRAINED:
        return checkpoint
    out = checkpoint.with_name(EXPORT_FILE)
    if out.is_file() and out.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns:
        return out
    weights = uploaded_file(project) if project.init_checkpoint else find_weights(name)
    if weights is None or not weights.is_file():
        raise ValueError(f"The weights of the {name} encoder are no longer on this server, so the "
                         "model cannot be exported with them. Add them again with "
                         f"`python manage.py weights add {name} FILE`.")
    from mlcore.encoders.bundle import bundle

    return bundle(checkpoint, weights, name, out)


def find_weights(name):
    """The local weight file of a pretrained encoder, or None."""
    return catalog.find_weights(name, catalog.weight_dirs(settings.WEIGHTS_DIR))


def store_folder(project, backbone, generation):
    # "timm/convnext_tiny" -> "timm--convnext_tiny": one folder per store, beside the others
    return cache_path(f"projects/{project.pk}/embeddings/{backbone.name.replace('/', '--')}-g{generation}")


def open_store(project, backbone, generation):
    """The project's store for this backbone and generation; folders of older generations
    (a reset started over) are removed. A store written with another weights file is
    started anew."""
    from mlcore.store import EmbeddingStore

    folder = store_folder(project, backbone, generation)
    for old in folder.parent.glob("*-g*"):
        if old != folder and old.name.rsplit("-g", 1)[-1].isdigit() and int(old.name.rsplit("-g", 1)[-1]) < generation:
            shutil.rmtree(old, ignore_errors=True)
    dim = catalog.PRETRAINED[backbone.name].out_dim
    try:
        return EmbeddingStore.open(folder, dim=dim, generation=generation, **backbone.identity)
    except ValueError as exc:  # e.g. another file under the same name: its vectors do not count
        log.warning("Project %s: starting the embeddings of %s over (%s)", project.pk, backbone.name, exc)
        shutil.rmtree(folder, ignore_errors=True)
        return EmbeddingStore.open(folder, dim=dim, generation=generation, **backbone.identity)


def embed_missing(store, backbone, item_ids, paths, device, progress=None):
    """Embed the items the store lacks, a batch at a time (each batch is committed to the
    store before the next, so an interrupted run keeps what it did). Returns how many were
    embedded; files that cannot be read are logged and left out (they stay missing)."""
    from mlcore.encoders import registry
    from mlcore.imaging import iter_embed_files

    missing = store.missing(item_ids)
    if not len(missing):
        return 0
    rows = positions(item_ids, missing)
    spec = registry.get(backbone.name)
    model = spec.build(backbone.weights).to(device)
    names = [paths[r] for r in rows]  # read through the item storage (local files or the bucket)
    workers = None if settings.EMBED_WORKERS < 0 else settings.EMBED_WORKERS
    done, failed = 0, 0
    for idx, vectors, ok in iter_embed_files(model, names, spec.input_size, spec.mean, spec.std,
                                             batch_size=settings.EMBED_BATCH_SIZE, workers=workers,
                                             device=str(device), progress=progress, opener=open_image):
        if ok.any():
            store.add(missing[idx[ok]], vectors[ok])
            done += int(ok.sum())
        failed += int((~ok).sum())
    if failed:
        log.warning("%s of %s images could not be read for the %s encoder; they stay out of the model.",
                    failed, len(missing), backbone.name)
    return done


def pool_embeddings(store, item_ids):
    """(N, D) float32 in the order of `item_ids`; zero rows for items the store lacks (an
    unreadable file): they stay isolated in the kNN graph."""
    have = np.isin(item_ids, store.ids)
    out = np.zeros((len(item_ids), store.dim), dtype=np.float32)
    if have.any():
        out[have] = store.get(item_ids[have])
    return out
