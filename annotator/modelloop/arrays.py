"""A project's rows as arrays for the learner: the pool images in pool_index order, labels
and soft labels from the live answers, and a cheap signature that says when they changed."""
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import Max
from PIL import Image, ImageOps

from annotator.models import Annotation, AnnotationLabel, Item
from annotator.storage import item_storage

log = logging.getLogger(__name__)

GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "F", "P"}  # P checked per image below


def pool_rows(project):
    """(item ids, pool indices, image paths) of the whole pool, in pool_index order."""
    rows = list(Item.objects.filter(project=project).order_by("pool_index").values_list("id", "pool_index", "image"))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    pool_index = np.array([r[1] for r in rows], dtype=np.int64)
    paths = [r[2] for r in rows]
    return ids, pool_index, paths


def positions(ids, wanted, missing=None):
    """Position of each of `wanted` in `ids` (ids in any order): int64 (len(wanted),).
    A wanted id absent from `ids` gets `missing` when given, else it is an error."""
    ids, wanted = np.asarray(ids), np.asarray(wanted)
    order = np.argsort(ids, kind="stable")
    at = np.searchsorted(ids[order], wanted).clip(0, max(len(ids) - 1, 0))
    found = (ids[order][at] == wanted) if len(ids) else np.zeros(len(wanted), bool)
    if missing is None and not found.all():
        raise KeyError(f"ids not found: {wanted[~found][:10].tolist()}")
    out = order[at] if len(ids) else np.zeros(len(wanted), np.int64)
    return np.where(found, out, missing if missing is not None else 0).astype(np.int64)


def media_path(name):
    path = (Path(settings.MEDIA_ROOT) / name).resolve()
    if not path.is_relative_to(Path(settings.MEDIA_ROOT).resolve()):
        raise ValueError(f"Refusing to read {name!r}: it is outside MEDIA_ROOT.")
    return path


def open_image(name):
    """A stored image opened for reading, through the item storage (annotator.storage): a
    local file (inside MEDIA_ROOT only), or the object's bytes from the bucket (the same
    byte cap as an import). Module-level, so DataLoader workers can call it."""
    storage = item_storage()
    if storage.local(name):
        return open(media_path(name), "rb")
    return io.BytesIO(storage.read_bytes(name, limit=settings.IMPORT_MAX_FILE_BYTES + 1))


def image_shape(paths, sample=64):
    """(side, channels) for the learner: the median short side (capped) and 1 channel when
    every sampled image is grayscale."""
    step = max(1, len(paths) // sample)
    sides, gray = [], True
    for name in paths[::step][:sample]:
        with open_image(name) as handle, Image.open(handle) as im:
            sides.append(min(im.size))
            if im.mode == "P":
                gray = gray and im.convert("RGB").getextrema() == im.convert("L").convert("RGB").getextrema()
            else:
                gray = gray and im.mode in GRAYSCALE_MODES
    side = int(np.median(sides)) if sides else 28
    return max(8, min(side, settings.TRAINER_MAX_IMAGE_SIDE)), 1 if gray else 3


def centre_square(size):
    """The box of the largest centred square of an image of `size` (w, h): the pool's
    images are cropped to it, so photos keep their proportions instead of being squashed."""
    w, h = size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return (left, top, left + s, top + s)


# Objects read at once from a bucket (each read waits mostly on the network).
BUCKET_READ_THREADS = 8


def load_images(paths, side, channels):
    """uint8 (N, side, side) or (N, side, side, 3): each image's centre square (aspect kept,
    not squashed) resized to `side`. Unreadable files become black images (logged) so that
    one damaged file cannot stop the loop. Objects in a bucket are read several at a time."""
    shape = (len(paths), side, side) if channels == 1 else (len(paths), side, side, 3)
    out = np.zeros(shape, dtype=np.uint8)

    def one(name):
        try:
            with open_image(name) as handle, Image.open(handle) as im:
                im = ImageOps.exif_transpose(im).convert("L" if channels == 1 else "RGB")
                return np.asarray(im.resize((side, side), Image.BILINEAR, box=centre_square(im.size),
                                            reducing_gap=2.0))
        except Exception as exc:  # noqa: BLE001 - a damaged file, a missing object, a bucket error
            log.warning("Image %s could not be read for training: %s", name, exc)
            return None

    if len(paths) > 1 and not item_storage().local(paths[0]):
        with ThreadPoolExecutor(max_workers=BUCKET_READ_THREADS) as pool:
            pictures = list(pool.map(one, paths))
    else:
        pictures = map(one, paths)
    for i, picture in enumerate(pictures):
        if picture is not None:
            out[i] = picture
    return out


def label_arrays(project, pool_index, classes):
    """labels (N,) int with -1 = unlabeled (majority of live answers, ties to the earliest)
    and soft labels (N, C) (vote shares) when some item has several answers, else None.
    A multi-label project's are `set_arrays`'."""
    if project.multi_label:
        return set_arrays(project, pool_index, classes)
    column = {label_id: j for j, label_id in enumerate(classes)}
    rows = (
        Annotation.objects.filter(item__project=project, undone=False, skipped=False)
        .order_by("created_at", "id")
        .values_list("item__pool_index", "label_id")
    )
    votes = np.zeros((len(pool_index), max(1, len(classes))), dtype=np.float32)
    first = np.full(len(pool_index), -1, dtype=np.int64)
    for p, label_id in rows:
        r = np.searchsorted(pool_index, p)
        j = column.get(label_id)
        if j is None or r >= len(pool_index) or pool_index[r] != p:
            continue
        votes[r, j] += 1
        if first[r] < 0:
            first[r] = j
    counts = votes.sum(1)
    labels = np.where(counts > 0, votes.argmax(1), -1)
    tie = (counts > 0) & ((votes == votes.max(1, keepdims=True)).sum(1) > 1)
    labels[tie] = first[tie]
    soft = None
    if (counts > 1).any():
        soft = np.divide(votes, np.maximum(counts, 1)[:, None])
    return labels.astype(np.int64), soft


def audit_rows(project, pool_index):
    """Pool rows of the items answered as audits (drawn uniformly at random, so an honest
    held-out set): the slow path keeps them out of fine-tuning to judge it on them."""
    indices = Annotation.objects.filter(
        item__project=project, is_audit=True, undone=False, skipped=False
    ).values_list("item__pool_index", flat=True)
    wanted = np.unique(np.fromiter(indices, dtype=np.int64))
    rows = np.searchsorted(pool_index, wanted)
    ok = rows < len(pool_index)
    ok[ok] = pool_index[rows[ok]] == wanted[ok]
    return rows[ok]


def bulk_only_rows(project, pool_index):
    """bool (N,): the rows whose live labels all come from bulk answers (labeling.bulk), which
    train the model but stay out of the scores it judges itself by; None when there are none."""
    live = Annotation.objects.filter(item__project=project, undone=False, skipped=False)
    bulk = np.fromiter(live.filter(source=Annotation.Source.BULK).values_list("item__pool_index", flat=True), np.int64)
    if not len(bulk):
        return None
    other = np.fromiter(live.exclude(source=Annotation.Source.BULK).values_list("item__pool_index", flat=True), np.int64)
    only = np.setdiff1d(bulk, other)
    rows = np.searchsorted(pool_index, only)
    ok = rows < len(pool_index)
    rows, only = rows[ok], only[ok]
    mask = np.zeros(len(pool_index), bool)
    mask[rows[pool_index[rows] == only]] = True
    return mask


def set_arrays(project, pool_index, classes):
    """A multi-label project's answers: answered (N,) int64, 0 for an item with a live answer
    (a set, possibly empty) and -1 otherwise, and targets (N, C) float32, the share of the
    item's live answers that include each class (0 or 1 with one annotator)."""
    column = {label_id: j for j, label_id in enumerate(classes)}
    answers = {}  # annotation id -> pool row
    for pk, p in Annotation.objects.filter(item__project=project, undone=False, skipped=False).values_list(
            "pk", "item__pool_index"):
        r = int(np.searchsorted(pool_index, p))
        if r < len(pool_index) and pool_index[r] == p:
            answers[pk] = r
    counts = np.zeros(len(pool_index), np.float32)
    rows = np.fromiter(answers.values(), np.int64, len(answers))
    np.add.at(counts, rows, 1.0)
    votes = np.zeros((len(pool_index), max(1, len(classes))), np.float32)
    for annotation_id, label_id in AnnotationLabel.objects.filter(
            annotation__item__project=project, annotation__undone=False).values_list("annotation_id", "label_id"):
        r, j = answers.get(annotation_id), column.get(label_id)
        if r is not None and j is not None:
            votes[r, j] += 1.0
    answered = np.where(counts > 0, 0, -1).astype(np.int64)
    return answered, votes / np.maximum(counts, 1.0)[:, None]


def answers_signature(project):
    """A cheap fingerprint of the project's answers (one aggregate query): it changes with
    a new answer, an undo, a deletion or a correction, so the loop reads every answer only
    when something changed."""
    from django.db.models import Count, Q, Sum

    signature = tuple(Annotation.objects.filter(item__project=project).aggregate(
        n=Count("id"), top=Max("id"), live=Count("id", filter=Q(undone=False)),
        labels=Sum("label_id", filter=Q(undone=False)),
    ).values())
    if not project.multi_label:
        return signature
    # a correction rewrites a set's rows: new ids (top) or fewer rows (n)
    return signature + tuple(AnnotationLabel.objects.filter(annotation__item__project=project).aggregate(
        n=Count("id"), top=Max("id")).values())


def ordered_class_ids(project):
    classes = project.ordered_classes()
    return [c.pk for c in classes], [c.name for c in classes]
