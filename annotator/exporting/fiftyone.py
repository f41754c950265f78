"""The fiftyone format: FiftyOne's image classification layout
(`fiftyone.types.FiftyOneImageClassificationDataset`), which
`fo.Dataset.from_dir(root, dataset_type=fo.types.FiftyOneImageClassificationDataset)` reads:

    data/<item id>.<ext>   the labeled images (GIF written as PNG, as in imagefolder)
    labels.json            {"classes": [name, ...], "labels": {"<item id>": class index, ...}}
    export.json            the project, the options, the model version and skipped items

`labels` maps each file's stem to an index into `classes` (the project's classes in their
order, then any class only the model knows). It is spooled to a temporary file while the
images are written, so a large export holds no dict of rows.
"""
import json
import logging
import tempfile
import zipfile

from django.utils import timezone

from annotator.exporting import zipstream
from annotator.exporting.imagefolder import LOADER_SUFFIXES, copy_into, media_file
from annotator.exporting.labels import label_rows, row_labels
from annotator.exporting.registry import LABELS, Body, ExportFormat, register
from annotator.modelloop import predictions

log = logging.getLogger(__name__)


def _fiftyone_chunks(rows, names, meta):
    sink = zipstream.Sink()
    when = timezone.localtime().timetuple()[:6]
    index = {name: i for i, name in enumerate(names)}
    skipped = []
    with tempfile.SpooledTemporaryFile(max_size=zipstream.CHUNK_BYTES, mode="w+", encoding="utf-8") as labels, \
            zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        labels.write('{"classes": ' + json.dumps(names, ensure_ascii=False) + ', "labels": {')
        first = True
        for row in rows:
            path = media_file(row.file)
            if path is None:
                log.warning("Export left out item %s: its file %r is missing or outside MEDIA_ROOT.",
                            row.item_id, row.file)
                skipped.append(row.item_id)
                continue
            suffix = path.suffix.lower() if path.suffix.lower() in LOADER_SUFFIXES else ".png"
            yield from copy_into(zf, sink, path, zipstream.zip_info(f"data/{row.item_id}{suffix}", when))
            (label,) = row_labels(row)  # one target per image: this layout is single_label_only
            labels.write(("" if first else ", ") + f'"{row.item_id}": {index[label]}')
            first = False
        labels.write("}}")
        labels.seek(0)
        with zf.open(zipstream.zip_info("labels.json", when, zipfile.ZIP_DEFLATED), "w", force_zip64=True) as entry:
            while piece := labels.read(zipstream.CHUNK_BYTES):
                entry.write(piece.encode("utf-8"))
                yield from sink.drain()
        summary = {**meta, "exported_at": timezone.now().isoformat(), "skipped_items": skipped}
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
    return Body(_fiftyone_chunks(rows, names, meta), total)


register(ExportFormat(
    name="fiftyone", title="FiftyOne image classification dataset", note="zip: data/ and labels.json",
    choice="FiftyOne classification (zip)", filename="{slug}-fiftyone.zip", content_type="application/zip",
    kind=LABELS, unit="item", produce=_produce, single_label_only=True,
))
