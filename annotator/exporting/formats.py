"""Exports: the one code path behind the project page's download link,
`GET /api/projects/{id}/export/` and `manage.py export`.

Formats (`build(project, fmt, ...)`):
- csv, jsonl: one row per item with at least one live label (not undone, not a skip):
  the majority class (ties go to the class answered first), every annotator, the latest
  answer time, the vote distribution when the item has more than one label, the source
  (`human`, or `import` when every label came with the images) and the current model's
  guess with its confidence. `with_predictions` adds the unlabeled items whose guess is at
  least `min_confidence` confident, as rows with source `model`. CSV cells that a
  spreadsheet would run as a formula get a leading apostrophe.
- imagefolder: a zip with `<class folder>/<item id>.<ext>` for those rows, `metadata.csv`
  (same columns, `file_name` relative to the zip root) and `export.json` (class name ->
  folder, skipped items). Both `torchvision.datasets.ImageFolder(root)` and Hugging Face
  `load_dataset("imagefolder", data_dir=root)` load the unzipped folder as it is:
  - torchvision takes the class from the folder and ignores the files at the root; it
    does not read .gif files, so GIF images are written as PNG (first frame).
  - Hugging Face reads metadata.csv when one is present and then takes the `label` column
    from it instead of folder names; `drop_metadata=True` gives folder-name labels.
  - Hugging Face also guesses splits from path tokens such as "test", "val" or "train"
    between separators (`-._ ` and digits) and then drops every file outside those splits.
    File names are therefore the item id alone, and a lowercase split word in a class
    folder name is capitalised ("test" -> "Test"; the match is case-sensitive).
  Folder names keep letters, digits, "-", "_" and "."; they never start with a dot,
  underscore or dash (hidden, special or formula-like) and stay unique ignoring case.
  metadata.csv is escaped like the CSV export (a class "=x" reads "'=x" there);
  export.json keeps the exact names.
- model: the newest successful checkpoint file (mlcore: config, weights, class names).
- embeddings: an .npz with `embeddings` (N, D), `pool_index` (N,) and `item_id` (N,; -1
  for an item deleted since) from that checkpoint's folder.

Everything is produced lazily, chunk by chunk: rows come from database iterators, images
are copied in 1 MiB pieces into a zip written to a sink that the generator empties after
each piece, and the zip's metadata.csv is spooled to a temporary file until the images
are written. Checks that can refuse an export run in `build()` before the first byte.
Only files that resolve inside MEDIA_ROOT (images) or ARTIFACTS_ROOT (model files) are
read; an image outside it, or missing, is left out and logged.
"""
import csv
import heapq
import io
import json
import logging
import re
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path, PurePosixPath

import numpy as np
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.db.models import Exists, OuterRef
from django.utils import timezone
from PIL import Image

from annotator.access import ServiceError
from annotator.modelloop import predictions
from annotator.modelloop.predictions import POOL_INDEX_FILE, artifact_path
from annotator.models import Annotation, Item, ModelVersion

log = logging.getLogger(__name__)

LABEL_FORMATS = ("csv", "jsonl", "imagefolder")
MODEL_FORMATS = ("model", "embeddings")
FORMATS = LABEL_FORMATS + MODEL_FORMATS
DEFAULT_MIN_CONFIDENCE = 0.9
EMBEDDINGS_FILE = "embeddings.npy"  # written by the trainer next to learner.pt

SOURCE_MODEL = "model"
COLUMNS = [
    "item_id", "file", "original_name", "label", "label_source", "annotators", "labeled_at",
    "soft_label", "model_label", "model_confidence", "model_version",
]
METADATA_COLUMNS = ["file_name"] + [c for c in COLUMNS if c != "file"]
CHUNK_BYTES = 1024 * 1024
TEXT_CHUNK_BYTES = 64 * 1024
DB_CHUNK = 2000
CONFIDENCE_DIGITS = 4

# What torchvision's ImageFolder reads (Hugging Face reads these and more); other stored
# formats (GIF) are re-encoded as PNG.
LOADER_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
# Hugging Face's split words (datasets.data_files.SPLIT_KEYWORDS) between its separators.
SPLIT_WORD = re.compile(
    r"(?<![^-._ 0-9])(training|train|validation|valid|val|dev|testing|test|evaluation|eval)(?![^-._ 0-9])"
)
WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
ROOT_FILES = {"metadata.csv", "metadata.jsonl", "metadata.parquet", "export.json"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class ExportError(ServiceError):
    """A refused export, with a sentence that says what to do."""

    status = 400


class NoModel(ExportError):
    status = 404


@dataclass
class Export:
    """A ready export: `chunks` yields its bytes; `total` and `unit` size a progress bar
    (rows or bytes)."""

    filename: str
    content_type: str
    chunks: Iterator[bytes]
    total: int
    unit: str


@dataclass
class Row:
    item_id: int
    pool_index: int
    file: str  # the stored name, relative to MEDIA_ROOT
    original_name: str
    label: str
    source: str  # human | import | model
    annotators: list
    labeled_at: object  # datetime, None for model rows
    soft_label: dict | None
    model_label: str | None
    model_confidence: float | None
    model_version: int | None

    def as_json(self):
        return {
            "item_id": self.item_id,
            "file": self.file,
            "original_name": self.original_name,
            "label": self.label,
            "source": self.source,
            "annotators": self.annotators,
            "labeled_at": self.labeled_at.isoformat() if self.labeled_at else None,
            "soft_label": self.soft_label,
            "model_label": self.model_label,
            "model_confidence": self.model_confidence,
            "model_version": self.model_version,
        }

    def cells(self):
        """The CSV cells in COLUMNS order (the first is `file`, or `file_name` in metadata.csv)."""
        return [
            self.item_id,
            self.file,
            self.original_name,
            self.label,
            self.source,
            ";".join(self.annotators),
            self.labeled_at.isoformat() if self.labeled_at else "",
            json.dumps(self.soft_label, ensure_ascii=False) if self.soft_label else "",
            self.model_label or "",
            "" if self.model_confidence is None else self.model_confidence,
            "" if self.model_version is None else self.model_version,
        ]


# --- options ----------------------------------------------------------------------------------


def parse_format(value):
    fmt = (value or "csv").strip().lower()
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {value!r}. Choose one of: {', '.join(FORMATS)}.")
    return fmt


def parse_min_confidence(value):
    if value is None or value == "":
        return DEFAULT_MIN_CONFIDENCE
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number <= 1.0:  # also refuses nan
        raise ExportError(f"min_confidence must be a number from 0 to 1 (for example 0.9), not {value!r}.")
    return number


def parse_flag(value, name):
    text = (value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ExportError(f"{name} must be 1 or 0 (true or false), not {value!r}.")


# --- the entry point --------------------------------------------------------------------------


def build(project, fmt, *, with_predictions=False, min_confidence=DEFAULT_MIN_CONFIDENCE, progress=None):
    """The export of `project` in format `fmt`, checked and ready to stream. Raises
    ExportError (400) for bad options and NoModel (404) when there is no model to export.
    `progress(done, total)` is called as rows (or bytes) go out."""
    fmt = parse_format(fmt)
    min_confidence = parse_min_confidence(min_confidence)
    progress = progress or (lambda done, total: None)
    if fmt == "model":
        return _model_export(project, progress)
    if fmt == "embeddings":
        return _embeddings_export(project, progress)
    preds = predictions.current(project)
    rows, total = label_rows(project, preds, with_predictions=with_predictions, min_confidence=min_confidence,
                             progress=progress)
    if fmt == "csv":
        return Export(f"{project.slug}-labels.csv", "text/csv; charset=utf-8", _csv_chunks(rows), total, "item")
    if fmt == "jsonl":
        return Export(f"{project.slug}-labels.jsonl", "application/x-ndjson; charset=utf-8", _jsonl_chunks(rows),
                      total, "item")
    names = project.class_names()
    names += [name for name in (preds.classes if preds else []) if name not in names]
    folders = class_folders(names)
    meta = {"project": project.slug, "with_predictions": with_predictions,
            "min_confidence": min_confidence if with_predictions else None,
            "model_version": preds.version.number if preds else None}
    return Export(f"{project.slug}-imagefolder.zip", "application/zip",
                  _imagefolder_chunks(rows, names, folders, meta), total, "item")


# --- rows ---------------------------------------------------------------------------------------


def _live_labels(project):
    return Annotation.objects.filter(item__project=project, undone=False, skipped=False)


def label_rows(project, preds, *, with_predictions, min_confidence, progress):
    """(rows in pool order, how many items they are drawn from). Labeled items first
    come from their answers; with predictions, unlabeled items are merged in."""
    live = _live_labels(project)
    total = live.values("item_id").distinct().count()
    unlabeled = Item.objects.filter(project=project).exclude(
        Exists(live.filter(item=OuterRef("pk")))
    )
    if with_predictions and preds is not None:
        total += unlabeled.count()
    counter = {"done": 0}

    def tick():
        counter["done"] += 1
        if counter["done"] % 100 == 0 or counter["done"] == total:
            progress(counter["done"], total)

    order = {name: i for i, name in enumerate(project.class_names())}
    rows = _labeled_rows(live, preds, order, tick)
    if with_predictions and preds is not None:
        guessed = _model_rows(unlabeled, preds, min_confidence, tick)
        rows = heapq.merge(rows, guessed, key=lambda row: row.pool_index)
    return rows, total


def _guess(preds, pool_index):
    """(class, confidence) of the model's top guess, or (None, None) for an item it has not seen."""
    if preds is None:
        return None, None
    i = preds.row(pool_index)
    if i is None:
        return None, None
    p = np.asarray(preds.probs[i], dtype=np.float64)
    j = int(np.argmax(p))
    return preds.classes[j], round(float(p[j]), CONFIDENCE_DIGITS)


def _labeled_rows(live, preds, order, tick):
    answers = (
        live.order_by("item__pool_index", "item_id", "created_at", "id")
        .values_list("item_id", "item__pool_index", "item__image", "item__original_name",
                     "annotator__username", "label__name", "source", "created_at")
        .iterator(chunk_size=DB_CHUNK)
    )
    version = preds.version.number if preds else None
    for item_id, group in groupby(answers, key=lambda a: a[0]):
        group = list(group)  # (item, pool_index, image, original_name, user, label, source, time), oldest first
        _, pool_index, image, original_name = group[0][:4]
        votes = Counter(a[5] for a in group)
        best = max(votes.values())
        label = next(a[5] for a in group if votes[a[5]] == best)  # a tie goes to the earliest answer
        soft = None
        if len(group) > 1:
            soft = {name: round(n / len(group), CONFIDENCE_DIGITS)
                    for name, n in sorted(votes.items(), key=lambda kv: order.get(kv[0], len(order)))}
        imported = all(a[6] == Annotation.Source.IMPORT for a in group)
        model_label, confidence = _guess(preds, pool_index)
        tick()
        yield Row(
            item_id=item_id, pool_index=pool_index, file=image, original_name=original_name, label=label,
            source=Annotation.Source.IMPORT if imported else Annotation.Source.HUMAN,
            annotators=list(dict.fromkeys(a[4] for a in group)), labeled_at=max(a[7] for a in group),
            soft_label=soft, model_label=model_label, model_confidence=confidence, model_version=version,
        )


def _model_rows(unlabeled, preds, min_confidence, tick):
    items = unlabeled.order_by("pool_index").values_list("id", "pool_index", "image", "original_name")
    for item_id, pool_index, image, original_name in items.iterator(chunk_size=DB_CHUNK):
        tick()
        label, confidence = _guess(preds, pool_index)
        # The rounded confidence is the one shown, so 0.9 passes a 0.9 threshold.
        if label is None or confidence < min_confidence:
            continue
        yield Row(
            item_id=item_id, pool_index=pool_index, file=image, original_name=original_name, label=label,
            source=SOURCE_MODEL, annotators=[], labeled_at=None, soft_label=None, model_label=label,
            model_confidence=confidence, model_version=preds.version.number,
        )


# --- CSV and JSON Lines ---------------------------------------------------------------------


def csv_safe(value):
    """A cell a spreadsheet shows as text: one that starts like a formula gets a leading
    apostrophe (plain numbers such as -1 are left alone: they cannot run anything)."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _csv_chunks(rows):
    """CSV bytes in pieces of about TEXT_CHUNK_BYTES."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([csv_safe(cell) for cell in row.cells()])
        if buffer.tell() >= TEXT_CHUNK_BYTES:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def _jsonl_chunks(rows):
    pending = []
    size = 0
    for row in rows:
        line = json.dumps(row.as_json(), ensure_ascii=False) + "\n"
        pending.append(line)
        size += len(line)
        if size >= TEXT_CHUNK_BYTES:
            yield "".join(pending).encode("utf-8")
            pending, size = [], 0
    if pending:
        yield "".join(pending).encode("utf-8")


# --- the ImageFolder zip ----------------------------------------------------------------------


def _folder_name(name):
    folder = re.sub(r"[^\w.-]+", "_", name).lstrip("._-")[:100].rstrip(".")
    folder = SPLIT_WORD.sub(lambda m: m.group(0).capitalize(), folder)
    if not folder:
        return "class"
    if folder.split(".")[0].lower() in WINDOWS_RESERVED:
        folder = f"{folder}_class"
    return folder


def class_folders(names):
    """{class name: folder name}: safe as one path component on every system (no "/", "..",
    hidden or reserved names), unique ignoring case, and not a Hugging Face split word."""
    folders, taken = {}, set(ROOT_FILES)
    for name in names:
        base = _folder_name(name)
        folder, n = base, 1
        while folder.casefold() in taken:
            n += 1
            folder = f"{base}-{n}"
        taken.add(folder.casefold())
        folders[name] = folder
    return folders


class _Sink:
    """A write-only, unseekable file that zipfile writes into and the generator empties:
    what it holds at any time is the last piece written, never the whole archive."""

    def __init__(self):
        self._parts = []
        self._position = 0

    def write(self, data):
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self):
        return self._position

    def flush(self):
        pass

    def take(self):
        data = b"".join(self._parts)
        self._parts.clear()
        return data

    def drain(self):
        """Yields what was written since the last call, if anything."""
        if data := self.take():
            yield data


def _zip_info(name, when, compress_type=zipfile.ZIP_STORED):
    info = zipfile.ZipInfo(name, date_time=when)
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    return info


def media_file(name):
    """The absolute path of a stored file if it resolves inside MEDIA_ROOT and exists, else None."""
    if not name:
        return None
    root = Path(settings.MEDIA_ROOT).resolve()
    try:
        path = Path(Item._meta.get_field("image").storage.path(name)).resolve()
    except (SuspiciousFileOperation, ValueError, OSError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def _copy_into(zf, sink, path, info):
    """Adds one image to the zip, yielding the zip's bytes as they are written."""
    suffix = path.suffix.lower()
    with zf.open(info, "w", force_zip64=path.stat().st_size > 2**31) as entry:
        if suffix in LOADER_SUFFIXES:
            with path.open("rb") as source:
                while piece := source.read(CHUNK_BYTES):
                    entry.write(piece)
                    yield from sink.drain()
        else:
            with Image.open(path) as image:
                image.seek(0)
                converted = io.BytesIO()
                image.save(converted, format="PNG")
            entry.write(converted.getvalue())
            yield from sink.drain()


def _arcname(row, folders, stored):
    suffix = stored.suffix.lower()
    if suffix not in LOADER_SUFFIXES:
        suffix = ".png"
    return f"{folders[row.label]}/{row.item_id}{suffix}"


def _imagefolder_chunks(rows, names, folders, meta):
    sink = _Sink()
    when = timezone.localtime().timetuple()[:6]
    skipped = []
    with tempfile.SpooledTemporaryFile(max_size=CHUNK_BYTES, mode="w+", encoding="utf-8", newline="") as table, \
            zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        writer = csv.writer(table, lineterminator="\r\n")
        writer.writerow(METADATA_COLUMNS)
        for row in rows:
            path = media_file(row.file)
            if path is None:
                log.warning("Export left out item %s: its file %r is missing or outside MEDIA_ROOT.",
                            row.item_id, row.file)
                skipped.append(row.item_id)
                continue
            arcname = _arcname(row, folders, path)
            yield from _copy_into(zf, sink, path, _zip_info(arcname, when))
            cells = row.cells()
            writer.writerow([arcname] + [csv_safe(c) for c in cells[:1] + cells[2:]])
        table.seek(0)
        with zf.open(_zip_info("metadata.csv", when, zipfile.ZIP_DEFLATED), "w", force_zip64=True) as entry:
            while piece := table.read(CHUNK_BYTES):
                entry.write(piece.encode("utf-8"))
                yield from sink.drain()
        summary = {
            **meta,
            "exported_at": timezone.now().isoformat(),
            "classes": [{"name": name, "folder": folders[name]} for name in names],
            "skipped_items": skipped,
        }
        zf.writestr(_zip_info("export.json", when, zipfile.ZIP_DEFLATED),
                    json.dumps(summary, ensure_ascii=False, indent=2))
    yield from sink.drain()


# --- the model and the embeddings -----------------------------------------------------------


def latest_checkpoint_version(project):
    """The newest checkpoint of the current model (a reset makes older ones history)."""
    return (
        ModelVersion.objects.filter(project=project, status=ModelVersion.Status.OK,
                                    generation=project.model_generation)
        .exclude(checkpoint="")
        .order_by("-number", "-created_at", "-id")
        .first()
    )


def _artifact_file(relative):
    """The absolute path of a model file if it resolves inside ARTIFACTS_ROOT and exists, else None."""
    root = Path(settings.ARTIFACTS_ROOT).resolve()
    path = artifact_path(relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def _checkpoint(project):
    version = latest_checkpoint_version(project)
    if version is None:
        raise NoModel(
            "No trained model yet: the model loop writes one after pretraining. "
            "Start a trainer (`manage.py serve` runs one) and try again later."
        )
    path = _artifact_file(version.checkpoint)
    if path is None:
        log.warning("Model version %s of project %s: checkpoint %r is missing or outside ARTIFACTS_ROOT.",
                    version.pk, project.pk, version.checkpoint)
        raise NoModel(
            f"No trained model yet: the files of model version {version.number} are missing on the server. "
            "Wait for the next training run, or ask an administrator."
        )
    return version, path


def _file_chunks(path, progress, total):
    done = 0
    with path.open("rb") as source:
        while piece := source.read(CHUNK_BYTES):
            done += len(piece)
            progress(done, total)
            yield piece


def _model_export(project, progress):
    version, path = _checkpoint(project)
    size = path.stat().st_size
    return Export(f"{project.slug}-model-v{version.number}.pt", "application/octet-stream",
                  _file_chunks(path, progress, size), size, "B")


def _embeddings_export(project, progress):
    version, checkpoint = _checkpoint(project)
    folder = PurePosixPath(version.checkpoint).parent
    embeddings_path = _artifact_file(str(folder / EMBEDDINGS_FILE))
    pool_index_path = _artifact_file(str(folder / POOL_INDEX_FILE))
    if embeddings_path is None or pool_index_path is None:
        raise NoModel(
            f"No trained model yet with embeddings: model version {version.number} has none on the server. "
            "Wait for the next training run, or ask an administrator."
        )
    embeddings = np.load(embeddings_path, mmap_mode="r")  # (N, D)
    pool_index = np.load(pool_index_path)  # (N,)
    if embeddings.ndim != 2 or len(pool_index) != len(embeddings):
        raise NoModel(
            f"The embeddings of model version {version.number} do not match its pool index; "
            "wait for the next training run."
        )
    ids = dict(Item.objects.filter(project=project).values_list("pool_index", "id"))
    item_id = np.array([ids.get(int(p), -1) for p in pool_index], dtype=np.int64)  # (N,)
    arrays = {"embeddings": embeddings, "pool_index": np.asarray(pool_index, dtype=np.int64), "item_id": item_id}
    total = sum(a.nbytes for a in arrays.values())
    return Export(f"{project.slug}-embeddings-v{version.number}.npz", "application/octet-stream",
                  _npz_chunks(arrays, progress, total), total, "B")


def _npz_chunks(arrays, progress, total):
    """np.savez's layout (a zip of .npy files), written row block by row block."""
    sink = _Sink()
    when = timezone.localtime().timetuple()[:6]
    done = 0
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False, "shape": array.shape}
            row_bytes = max(1, array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64)))
            step = max(1, CHUNK_BYTES // row_bytes)
            with zf.open(_zip_info(f"{name}.npy", when), "w", force_zip64=True) as entry:
                np.lib.format.write_array_header_1_0(entry, header)
                for start in range(0, len(array), step):
                    block = np.ascontiguousarray(array[start:start + step])
                    entry.write(block.tobytes())
                    done += block.nbytes
                    progress(done, total)
                    yield from sink.drain()
    yield from sink.drain()

