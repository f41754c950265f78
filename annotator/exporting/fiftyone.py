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
import zipfile
from pathlib import PurePosixPath

from django.utils import timezone

from annotator.exporting import zipstream
from annotator.exporting.imagefolder import LOADER_SUFFIXES, copy_into, exported_file
from annotator.exporting.labels import label_rows, row_labels
from annotator.exporting.registry import LABELS, Body, ExportFormat, register
from annotator.modelloop import predictions


def _fiftyone_chunks(rows, names, meta):
    sink = zipstream.Sink()
    when = timezone.localtime().timetuple()[:6]
    index = {name: i for i, name in enumerate(names)}
    skipped = []
    with zipstream.spooled_text() as labels, zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        labels.write('{"classes": ' + json.dumps(names, ensure_ascii=False) + ', "labels": {')
        first = True
        for row in rows:
            stream = exported_file(row.item_id, row.file, skipped)
            if stream is None:
                continue
            stored = PurePosixPath(row.file).suffix.lower()
            suffix = stored if stored in LOADER_SUFFIXES else ".png"
            yield from copy_into(zf, sink, stream, stored, zipstream.zip_info(f"data/{row.item_id}{suffix}", when))
            (label,) = row_labels(row)  # one target per image: this layout is single_label_only
            labels.write(("" if first else ", ") + f'"{row.item_id}": {index[label]}')
            first = False
        labels.write("}}")
        yield from zipstream.write_text(zf, sink, "labels.json", labels, when)
        zipstream.write_json(zf, "export.json", {**meta, "exported_at": timezone.now().isoformat(),
                                                 "skipped_items": skipped}, when)
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
