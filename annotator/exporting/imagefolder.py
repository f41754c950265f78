"""The class-folder formats: `imagefolder`, a zip of the labeled images in class folders, with
metadata.csv and export.json, that torchvision's ImageFolder and Hugging Face's imagefolder
load as is; and `yolo-classify`, the same folders under train/ and val/ (and test/), the
layout Ultralytics' YOLO classification trains on.

The zip holds `<class folder>/<item id>.<ext>` for each label row, `metadata.csv` (the CSV
export's columns, `file_name` relative to the zip root, escaped like the CSV export) and
`export.json` (exact class names -> folders, the split, skipped items). With `split`
(annotator.exporting.splits) each split has its own folder, `train/<class folder>/...`, and
its own metadata.csv (file names relative to the split's folder, as Hugging Face reads them);
yolo-classify always splits and writes no metadata.csv. What the loaders need:
- torchvision takes the class from the folder, ignores files at the root and does not read
  .gif files, so GIF images are written as PNG (first frame).
- Hugging Face takes the `label` column from metadata.csv when there is one
  (`drop_metadata=True` gives folder-name labels), and it guesses splits from path tokens
  such as "test" or "train", dropping every file outside them: file names are therefore
  the item id alone, and class folders never hold a lowercase split word.
Images are read through the item storage (annotator.storage.ItemStorage: local files, the
bucket, or an object imported in place), streamed a block at a time. A local file is read
only when it resolves inside MEDIA_ROOT; a missing image is left out and logged.
"""
import csv
import io
import logging
import os
import re
import zipfile
from array import array
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.utils import timezone
from PIL import Image

from annotator.exporting import zipstream
from annotator.exporting.labels import COLUMNS, csv_safe, label_rows, row_labels
from annotator.exporting.registry import (
    LABELS,
    OPTIONAL_SPLIT,
    REQUIRED_SPLIT,
    Body,
    ExportError,
    ExportFormat,
    register,
)
from annotator.exporting.splits import SplitPlan
from annotator.modelloop import predictions
from annotator.storage import Stream, item_storage

log = logging.getLogger(__name__)

METADATA_COLUMNS = ["file_name"] + [c for c in COLUMNS if c != "file"]
# What torchvision's ImageFolder reads (Hugging Face reads these and more); other stored
# formats (GIF) are re-encoded as PNG.
LOADER_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
# Hugging Face's split words (datasets.data_files.SPLIT_KEYWORDS) between its separators.
SPLIT_WORD = re.compile(
    r"(?<![^-._ 0-9])(training|train|validation|valid|val|dev|testing|test|evaluation|eval)(?![^-._ 0-9])"
)
WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
ROOT_FILES = {"metadata.csv", "metadata.jsonl", "metadata.parquet", "export.json"}


def _folder_name(name):
    folder = re.sub(r"[^\w.-]+", "_", name).lstrip("._-")[:100].rstrip(".")
    folder = SPLIT_WORD.sub(lambda m: m.group(0).capitalize(), folder)
    if not folder:
        return "class"
    if folder.split(".")[0].lower() in WINDOWS_RESERVED:
        folder = f"{folder}_class"
    return folder


def class_folders(names):
    """{class name: folder name}: letters, digits, "-", "_" and "." only; safe as one path
    component on every system (no "/", "..", hidden, special or formula-like names), unique
    ignoring case, and with a split word capitalised ("test" -> "Test"; Hugging Face's match
    is case-sensitive)."""
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


def media_file(name):
    """The absolute path of a stored file if it resolves inside MEDIA_ROOT and exists, else None."""
    if not name:
        return None
    root = Path(settings.MEDIA_ROOT).resolve()
    try:
        path = Path(item_storage().path(name)).resolve()
    except (SuspiciousFileOperation, ValueError, OSError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def open_image(name):
    """A Stream of a stored image (annotator.storage), or None when it is missing (or, on
    disk, outside MEDIA_ROOT)."""
    storage = item_storage()
    try:
        if not name:
            return None
        if storage.local(name):
            path = media_file(name)
            if path is None:
                return None
            handle = path.open("rb")
            return Stream(handle, os.fstat(handle.fileno()).st_size)
        return storage.open_stream(name)
    except FileNotFoundError:
        return None
    except Exception:
        log.exception("Reading %r for an export failed", name)
        return None


def exported_file(item_id, name, skipped):
    """The stored image as a Stream (open_image), or None after logging it and adding the item
    to `skipped`."""
    stream = open_image(name)
    if stream is None:
        log.warning("Export left out item %s: its file %r is missing or outside MEDIA_ROOT.", item_id, name)
        skipped.append(item_id)
    return stream


def copy_into(zf, sink, stream, suffix, info, *, convert=True):
    """Adds one image (a Stream, closed here) to the zip, yielding the zip's bytes as they are
    written; with `convert`, a format the loaders do not read (GIF) is written as PNG."""
    with stream, zf.open(info, "w", force_zip64=stream.size > 2**31) as entry:
        if suffix in LOADER_SUFFIXES or not convert:
            while piece := stream.read(zipstream.CHUNK_BYTES):
                entry.write(piece)
                yield from sink.drain()
        else:
            with Image.open(io.BytesIO(stream.read())) as image:
                image.seek(0)
                converted = io.BytesIO()
                image.save(converted, format="PNG")
            entry.write(converted.getvalue())
            yield from sink.drain()


def _arcname(row, folders, stored):
    """`<class folder>/<item id>.<ext>`, relative to the zip root or to a split's folder."""
    suffix = PurePosixPath(stored).suffix.lower()
    if suffix not in LOADER_SUFFIXES:
        suffix = ".png"
    (label,) = row_labels(row)  # one class per image: these layouts are single_label_only
    return f"{folders[label]}/{row.item_id}{suffix}"


def _metadata_table():
    table = zipstream.spooled_text()
    writer = csv.writer(table, lineterminator="\r\n")
    writer.writerow(METADATA_COLUMNS)
    return table, writer


def _imagefolder_chunks(rows, names, folders, meta, *, plan=None, metadata=True):
    """The zip: images under `<split>/` when there is a split `plan`, and a metadata.csv
    next to the class folders (spooled to a temporary file until the images are written)."""
    sink = zipstream.Sink()
    when = timezone.localtime().timetuple()[:6]
    skipped = []
    tables = {}  # folder prefix ("" or "train/") -> (spooled file, csv writer)
    try:
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for row in rows:
                stream = exported_file(row.item_id, row.file, skipped)
                if stream is None:
                    continue
                prefix = f"{plan.split_of(row.item_id)}/" if plan else ""
                arcname = _arcname(row, folders, row.file)
                yield from copy_into(zf, sink, stream, PurePosixPath(row.file).suffix.lower(),
                                     zipstream.zip_info(prefix + arcname, when))
                if metadata:
                    if prefix not in tables:
                        tables[prefix] = _metadata_table()
                    cells = row.cells()
                    tables[prefix][1].writerow([arcname] + [csv_safe(c) for c in cells[:1] + cells[2:]])
            for prefix, (table, _writer) in sorted(tables.items()):
                yield from zipstream.write_text(zf, sink, f"{prefix}metadata.csv", table, when)
            summary = {
                **meta,
                "exported_at": timezone.now().isoformat(),
                "classes": [{"name": name, "folder": folders[name]} for name in names],
                "split": plan.summary(meta["seed"]) if plan else None,
                "skipped_items": skipped,
            }
            zipstream.write_json(zf, "export.json", summary, when)
        yield from sink.drain()
    finally:
        for table, _writer in tables.values():
            table.close()


def split_plan(project, preds, options):
    """The split of the rows the export will write (a first, silent pass over them), or None."""
    if options.split is None:
        return None
    rows, _total = label_rows(project, preds, options, lambda done, total: None)
    ids_by_class = {}
    for row in rows:
        (label,) = row_labels(row)
        ids_by_class.setdefault(label, array("q")).append(row.item_id)
    return SplitPlan(ids_by_class, options.split, options.seed)


def _folder_export(project, options, progress, *, metadata):
    preds = predictions.current(project)
    plan = split_plan(project, preds, options)
    rows, total = label_rows(project, preds, options, progress)
    names = project.class_names()
    names += [name for name in (preds.classes if preds else []) if name not in names]
    meta = {"project": project.slug, "with_predictions": options.with_predictions,
            "min_confidence": options.min_confidence if options.with_predictions else None,
            "model_version": preds.version.number if preds else None, "seed": options.seed}
    return Body(_imagefolder_chunks(rows, names, class_folders(names), meta, plan=plan, metadata=metadata), total)


def _produce(project, options, progress):
    return _folder_export(project, options, progress, metadata=True)


def _yolo_classify(project, options, progress):
    """Ultralytics' classification layout: train/ and val/ (and test/ when asked) of class
    folders; Ultralytics needs a validation split, so its fraction may not be 0."""
    if options.split[1] <= 0:
        raise ExportError("The yolo-classify format needs a validation split: give val a fraction above 0 "
                          "(for example split=0.8,0.2 or split=0.8,0.1,0.1).")
    return _folder_export(project, options, progress, metadata=False)


register(ExportFormat(
    name="imagefolder", title="Images in class folders", note="zip", choice="Class folders (zip)",
    filename="{slug}-imagefolder.zip", content_type="application/zip", kind=LABELS, unit="item",
    produce=_produce, single_label_only=True, splits=OPTIONAL_SPLIT,
))
register(ExportFormat(
    name="yolo-classify", title="YOLO classification dataset", note="zip: train/val(/test) class folders",
    choice="YOLO classification (zip)", filename="{slug}-yolo-classify.zip", content_type="application/zip",
    kind=LABELS, unit="item", produce=_yolo_classify, single_label_only=True, splits=REQUIRED_SPLIT,
    default_split=(0.8, 0.2),
))
