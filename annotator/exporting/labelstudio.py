"""The labelstudio format: a zip that Label Studio's JSON import reads, one task per item.

    tasks.json         [{"data": {...}, "annotations": [...], "predictions": [...]}, ...]
    label_config.xml   <View><Image name="image" value="$image"/><Choices name="choice" ...>
    images/<item id>.<ext>
    export.json        the project, the model version, skipped items

Each task's `data.image` is the image's path inside the zip (`images/12.png`), not a URL of
this app: the app's image URLs need a signed-in member, which Label Studio is not. `data`
also carries `item_id`, `original_name` and `sha256` (the content hash our import matches
on). Every live answer is an annotation (a `choices` result from `choice` to `image`, the
names the labeling config declares); a skip is a cancelled annotation with no result. The
current model's guess is a prediction with `model_version` and `score`.
"""
import json
import zipfile
from itertools import islice
from pathlib import PurePosixPath
from xml.sax.saxutils import quoteattr

import numpy as np
from django.utils import timezone

from annotator.db import chunks
from annotator.exporting import zipstream
from annotator.exporting.imagefolder import copy_into, exported_file
from annotator.exporting.labels import CONFIDENCE_DIGITS, answer_labels
from annotator.exporting.registry import TASKS, Body, ExportFormat, register
from annotator.modelloop import predictions
from annotator.models import Annotation, AnnotationLabel, Item

FROM_NAME, TO_NAME = "choice", "image"  # the labeling config's Choices and Image names
ITEMS_PER_QUERY = 500


def label_config(names, multiple=False):
    """The labeling config whose names the tasks' results use (`multiple`: a multi-label
    project's sets of classes)."""
    choices = "".join(f"    <Choice value={quoteattr(name)}/>\n" for name in names)
    kind = "multiple" if multiple else "single"
    return (f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
            f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="{kind}" showInline="true">\n'
            f"{choices}  </Choices>\n</View>\n")


def _result(names, ident):
    return [{"id": ident, "from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
             "value": {"choices": names}}]


def _annotation(answer, sets):
    """One live answer as a Label Studio annotation; `sets` maps a multi-label project's
    answers to their classes (None for a single-label project)."""
    pk, label, skipped, created_at, duration_ms = answer
    names = sets.get(pk, []) if sets is not None else answer_labels(label)
    entry = {
        "result": [] if skipped else _result(names, f"a{pk}"),
        "was_cancelled": skipped,
        "ground_truth": False,
        "created_at": created_at.isoformat(),
    }
    if duration_ms is not None:
        entry["lead_time"] = duration_ms / 1000
    return entry


def _prediction(preds, pool_index, item_id, multi_label=False):
    i = preds.row(pool_index) if preds else None
    if i is None:
        return []
    p = np.asarray(preds.probs[i], dtype=np.float64)  # (C,)
    if multi_label:  # per-class probabilities: the suggested set, scored by the chance it is all right
        chosen = np.flatnonzero(p >= 0.5)
        score = float(np.prod(np.where(p >= 0.5, p, 1.0 - p)))
        return [{"model_version": f"v{preds.version.number}", "score": round(score, CONFIDENCE_DIGITS),
                 "result": _result([preds.classes[j] for j in chosen], f"p{item_id}")}]
    j = int(np.argmax(p))
    return [{"model_version": f"v{preds.version.number}", "score": round(float(p[j]), CONFIDENCE_DIGITS),
             "result": _result([preds.classes[j]], f"p{item_id}")}]


def _answer_sets(project, answers):
    """{answer id: its class names in the project's class order} for a multi-label batch."""
    ids = [a[0] for rows in answers.values() for a in rows]
    sets = {}
    for chunk in chunks(ids):
        links = (AnnotationLabel.objects.filter(annotation_id__in=chunk)
                 .order_by("label__order", "label_id").values_list("annotation_id", "label__name"))
        for pk, name in links:
            sets.setdefault(pk, []).append(name)
    return sets


def _tasks(project, preds):
    """(item, task) in pool order; answers are read per ITEMS_PER_QUERY items."""
    items = (Item.objects.filter(project=project).order_by("pool_index")
             .values_list("id", "pool_index", "image", "original_name", "content_hash").iterator(chunk_size=2000))
    while batch := list(islice(items, ITEMS_PER_QUERY)):
        answers = {}
        for chunk in chunks([row[0] for row in batch]):
            live = (Annotation.objects.filter(item_id__in=chunk, undone=False).order_by("created_at", "id")
                    .values_list("item_id", "id", "label__name", "skipped", "created_at", "duration_ms"))
            for item_id, *answer in live:
                answers.setdefault(item_id, []).append(answer)
        sets = _answer_sets(project, answers) if project.multi_label else None
        for item_id, pool_index, image, original_name, content_hash in batch:
            task = {
                "data": {"image": None, "item_id": item_id, "original_name": original_name, "sha256": content_hash},
                "annotations": [_annotation(a, sets) for a in answers.get(item_id, [])],
                "predictions": _prediction(preds, pool_index, item_id, project.multi_label),
            }
            yield image, task


def _labelstudio_chunks(project, preds, names, meta, tick):
    sink = zipstream.Sink()
    when = timezone.localtime().timetuple()[:6]
    skipped = []
    with zipstream.spooled_text() as tasks, zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        tasks.write("[")
        first = True
        for image, task in _tasks(project, preds):
            tick()
            item_id = task["data"]["item_id"]
            stream = exported_file(item_id, image, skipped)
            if stream is None:
                continue
            suffix = PurePosixPath(image).suffix.lower()
            task["data"]["image"] = f"images/{item_id}{suffix}"
            yield from copy_into(zf, sink, stream, suffix, zipstream.zip_info(task["data"]["image"], when),
                                 convert=False)
            tasks.write(("\n" if first else ",\n") + json.dumps(task, ensure_ascii=False))
            first = False
        tasks.write("\n]\n")
        yield from zipstream.write_text(zf, sink, "tasks.json", tasks, when)
        zf.writestr(zipstream.zip_info("label_config.xml", when, zipfile.ZIP_DEFLATED), label_config(names, project.multi_label))
        zipstream.write_json(zf, "export.json", {**meta, "exported_at": timezone.now().isoformat(),
                                                 "skipped_items": skipped}, when)
    yield from sink.drain()


def _produce(project, options, progress):
    preds = predictions.current(project)
    total = Item.objects.filter(project=project).count()
    counter = {"done": 0}

    def tick():
        counter["done"] += 1
        if counter["done"] % 100 == 0 or counter["done"] == total:
            progress(counter["done"], total)

    names = project.class_names()
    names += [name for name in (preds.classes if preds else []) if name not in names]
    meta = {"project": project.slug, "model_version": preds.version.number if preds else None,
            "from_name": FROM_NAME, "to_name": TO_NAME}
    return Body(_labelstudio_chunks(project, preds, names, meta, tick), total)


register(ExportFormat(
    name="labelstudio", title="Label Studio tasks", note="zip: tasks.json, labeling config, images",
    filename="{slug}-labelstudio.zip", content_type="application/zip", kind=TASKS, unit="item", produce=_produce,
))
