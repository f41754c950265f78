"""The imagefolder format: a zip of the labeled images in class folders, with metadata.csv
and export.json, that torchvision's ImageFolder and Hugging Face's imagefolder load as is.

The zip holds `<class folder>/<item id>.<ext>` for each label row, `metadata.csv` (the CSV
export's columns, `file_name` relative to the zip root, escaped like the CSV export) and
`export.json` (exact class names -> folders, skipped items). What the loaders need:
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
import json
import logging
import os
import re
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.utils import timezone
from PIL import Image

from annotator.exporting import zipstream
from annotator.exporting.labels import COLUMNS, csv_safe, label_rows
from annotator.exporting.registry import LABELS, Body, ExportFormat, register
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


def _copy_into(zf, sink, stream, suffix, info):
    """Adds one image to the zip, yielding the zip's bytes as they are written."""
    with stream, zf.open(info, "w", force_zip64=stream.size > 2**31) as entry:
        if suffix in LOADER_SUFFIXES:
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
    suffix = PurePosixPath(stored).suffix.lower()
    if suffix not in LOADER_SUFFIXES:
        suffix = ".png"
    return f"{folders[row.label]}/{row.item_id}{suffix}"


def _imagefolder_chunks(rows, names, folders, meta):
    """The zip; metadata.csv is spooled to a temporary file until the images are written."""
    sink = zipstream.Sink()
    when = timezone.localtime().timetuple()[:6]
    skipped = []
    with tempfile.SpooledTemporaryFile(max_size=zipstream.CHUNK_BYTES, mode="w+", encoding="utf-8",
                                       newline="") as table, \
            zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        writer = csv.writer(table, lineterminator="\r\n")
        writer.writerow(METADATA_COLUMNS)
        for row in rows:
            stream = open_image(row.file)
            if stream is None:
                log.warning("Export left out item %s: its file %r is missing or outside MEDIA_ROOT.",
                            row.item_id, row.file)
                skipped.append(row.item_id)
                continue
            arcname = _arcname(row, folders, row.file)
            yield from _copy_into(zf, sink, stream, PurePosixPath(row.file).suffix.lower(),
                                  zipstream.zip_info(arcname, when))
            cells = row.cells()
            writer.writerow([arcname] + [csv_safe(c) for c in cells[:1] + cells[2:]])
        table.seek(0)
        with zf.open(zipstream.zip_info("metadata.csv", when, zipfile.ZIP_DEFLATED), "w",
                     force_zip64=True) as entry:
            while piece := table.read(zipstream.CHUNK_BYTES):
                entry.write(piece.encode("utf-8"))
                yield from sink.drain()
        summary = {
            **meta,
            "exported_at": timezone.now().isoformat(),
            "classes": [{"name": name, "folder": folders[name]} for name in names],
            "skipped_items": skipped,
        }
        zf.writestr(zipstream.zip_info("export.json", when, zipfile.ZIP_DEFLATED),
                    json.dumps(summary, ensure_ascii=False, indent=2))
    yield from sink.drain()


def _produce(project, options, progress):
    preds = predictions.current(project)
    rows, total = label_rows(project, preds, options, progress)
    names = project.class_names()
    names += [name for name in (preds.classes if preds else []) if name not in names]
    meta = {"project": project.slug, "with_predictions": options.with_predictions,
            "min_confidence": options.min_confidence if options.with_predictions else None,
            "model_version": preds.version.number if preds else None}
    return Body(_imagefolder_chunks(rows, names, class_folders(names), meta), total)


register(ExportFormat(
    name="imagefolder", title="Images in class folders", note="zip", choice="Class folders (zip)",
    filename="{slug}-imagefolder.zip", content_type="application/zip", kind=LABELS, unit="item",
    produce=_produce,
))
