"""Label rows, one per labeled item, and the csv and jsonl formats that write them. A
multi-label project's rows carry `labels` (the item's set of classes, a list; [] when none
applies) and `model_labels` (the model's suggested set) instead of `label` and `model_label`;
`model_confidence` is then the chance the whole suggested set is right."""
import csv
import heapq
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from itertools import groupby
from types import SimpleNamespace

import numpy as np
from django.db.models import Exists, OuterRef

from annotator.exporting.registry import LABELS, Body, ExportFormat, register
from annotator.modelloop import predictions
from annotator.models import Annotation, AnnotationLabel, Item

SOURCE_MODEL = "model"
COLUMNS = [
    "item_id", "file", "original_name", "label", "label_source", "annotators", "labeled_at",
    "soft_label", "model_label", "model_confidence", "model_version",
]
# A multi-label project's columns: the sets in place of the single classes (JSON lists in CSV)
SET_COLUMNS = [{"label": "labels", "model_label": "model_labels"}.get(c, c) for c in COLUMNS]
TEXT_CHUNK_BYTES = 64 * 1024
DB_CHUNK = 2000
CONFIDENCE_DIGITS = 4
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


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
    labels: list | None = None  # multi-label: the item's set (label is then "")
    model_labels: list | None = None  # multi-label: the model's suggested set

    def as_json(self):
        if self.labels is not None:
            return self._set_json()
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

    def _set_json(self):
        return {
            "item_id": self.item_id, "file": self.file, "original_name": self.original_name, "labels": self.labels,
            "source": self.source, "annotators": self.annotators,
            "labeled_at": self.labeled_at.isoformat() if self.labeled_at else None, "soft_label": self.soft_label,
            "model_labels": self.model_labels, "model_confidence": self.model_confidence,
            "model_version": self.model_version,
        }

    def cells(self):
        """The CSV cells in COLUMNS order (the first is `file`, or `file_name` in metadata.csv);
        SET_COLUMNS' for a multi-label row, the sets as JSON lists."""
        if self.labels is not None:
            cells = self._single_cells()
            cells[3] = json.dumps(self.labels, ensure_ascii=False)
            cells[8] = "" if self.model_labels is None else json.dumps(self.model_labels, ensure_ascii=False)
            return cells
        return self._single_cells()

    def _single_cells(self):
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


def row_labels(row):
    """The classes of an exported item, as a list: every format reads them from here (one
    element while a project is single-label; a multi-label project's rows will carry several,
    and the formats that cannot hold several say so with `single_label_only`)."""
    return [row.label]


def answer_labels(label_name):
    """The classes of one human answer, as a list (see row_labels)."""
    return [label_name]


# --- rows ---------------------------------------------------------------------------------------


def _live_labels(project):
    return Annotation.objects.filter(item__project=project, undone=False, skipped=False)


def label_rows(project, preds, options, progress):
    """(rows in pool order, how many items they are drawn from), produced lazily from
    database iterators.

    A row per item with at least one live label (not undone, not a skip): the majority
    class (ties go to the class answered first), every annotator, the latest answer time,
    the vote distribution when the item has more than one label, the source (`human`, or
    `import` when every label came with the images) and the model's guess with its
    confidence. `options.with_predictions` merges in the unlabeled items whose guess is at
    least `options.min_confidence` sure, as rows with source `model`."""
    live = _live_labels(project)
    total = live.values("item_id").distinct().count()
    unlabeled = Item.objects.filter(project=project).exclude(
        Exists(live.filter(item=OuterRef("pk")))
    )
    with_predictions = options.with_predictions and preds is not None
    if with_predictions:
        total += unlabeled.count()
    counter = {"done": 0}

    def tick():
        counter["done"] += 1
        if counter["done"] % 100 == 0 or counter["done"] == total:
            progress(counter["done"], total)

    order = {name: i for i, name in enumerate(project.class_names())}
    if project.multi_label:
        rows = _set_rows(live, preds, order, tick)
    else:
        rows = _labeled_rows(live, preds, order, tick)
    if with_predictions:
        guessed = _model_rows(unlabeled, preds, options.min_confidence, tick, sets=project.multi_label)
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


def _model_rows(unlabeled, preds, min_confidence, tick, sets=False):
    items = unlabeled.order_by("pool_index").values_list("id", "pool_index", "image", "original_name")
    for item_id, pool_index, image, original_name in items.iterator(chunk_size=DB_CHUNK):
        tick()
        label, confidence = _guess(preds, pool_index)
        chosen = None
        if sets and label is not None:
            chosen, confidence = _set_guess(preds, pool_index)
        # The rounded confidence is the one shown, so 0.9 passes a 0.9 threshold.
        if label is None or confidence < min_confidence:
            continue
        yield Row(
            item_id=item_id, pool_index=pool_index, file=image, original_name=original_name,
            label="" if sets else label, source=SOURCE_MODEL, annotators=[], labeled_at=None, soft_label=None,
            model_label=None if sets else label, model_confidence=confidence, model_version=preds.version.number,
            labels=chosen, model_labels=chosen,
        )


def _set_guess(preds, pool_index):
    """(suggested set, the chance the whole set is right) of a multi-label version's guess,
    or (None, None) for an item it has not seen."""
    if preds is None or preds.row(pool_index) is None:
        return None, None
    guess = preds.suggestion(SimpleNamespace(pool_index=pool_index))
    return guess.get("labels", []), guess.get("set_confidence")


def _answer_sets(live):
    """(annotation id, [class names]) of the live multi-label answers, in the order
    `_set_rows` reads the answers, read alongside them (a merge, not a dict of every answer)."""
    links = (
        AnnotationLabel.objects.filter(annotation__in=live)
        .order_by("annotation__item__pool_index", "annotation__item_id", "annotation__created_at", "annotation_id")
        .values_list("annotation_id", "label__name").iterator(chunk_size=DB_CHUNK)
    )
    for annotation_id, group in groupby(links, key=lambda link: link[0]):
        yield annotation_id, [name for _a, name in group]


def _set_rows(live, preds, order, tick):
    """`_labeled_rows` for a multi-label project: an item's set is the classes that at least
    half of its live answers include (with one annotator, their set); `soft_label` gives each
    class's share when there are several answers."""
    answers = (
        live.order_by("item__pool_index", "item_id", "created_at", "id")
        .values_list("item_id", "item__pool_index", "item__image", "item__original_name",
                     "annotator__username", "id", "source", "created_at")
        .iterator(chunk_size=DB_CHUNK)
    )
    sets = _answer_sets(live)
    pending = next(sets, None)
    version = preds.version.number if preds else None
    for item_id, group in groupby(answers, key=lambda a: a[0]):
        group = list(group)
        _, pool_index, image, original_name = group[0][:4]
        votes = Counter()
        for answer in group:
            while pending is not None and pending[0] == answer[5]:
                votes.update(pending[1])
                pending = next(sets, None)
        by_order = sorted(votes, key=lambda name: order.get(name, len(order)))
        chosen = [name for name in by_order if 2 * votes[name] >= len(group)]
        soft = {name: round(votes[name] / len(group), CONFIDENCE_DIGITS) for name in by_order} if len(group) > 1 else None
        imported = all(a[6] == Annotation.Source.IMPORT for a in group)
        guessed, confidence = _set_guess(preds, pool_index)
        tick()
        yield Row(
            item_id=item_id, pool_index=pool_index, file=image, original_name=original_name, label="",
            source=Annotation.Source.IMPORT if imported else Annotation.Source.HUMAN,
            annotators=list(dict.fromkeys(a[4] for a in group)), labeled_at=max(a[7] for a in group),
            soft_label=soft, model_label=None, model_confidence=confidence, model_version=version,
            labels=chosen, model_labels=guessed,
        )


# --- CSV and JSON Lines ---------------------------------------------------------------------


def csv_safe(value):
    """A cell a spreadsheet shows as text: one that starts like a formula gets a leading
    apostrophe (plain numbers such as -1 are left alone: they cannot run anything)."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _csv_chunks(rows, columns=COLUMNS):
    """CSV bytes in pieces of about TEXT_CHUNK_BYTES."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
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


def _writer(chunks):
    """A format's `produce` that writes the label rows with `chunks(rows)`."""

    def produce(project, options, progress):
        rows, total = label_rows(project, predictions.current(project), options, progress)
        if chunks is _csv_chunks and project.multi_label:
            return Body(_csv_chunks(rows, SET_COLUMNS), total)
        return Body(chunks(rows), total)

    return produce


register(ExportFormat(
    name="csv", title="Labels", note="CSV", filename="{slug}-labels.csv",
    content_type="text/csv; charset=utf-8", kind=LABELS, unit="item", produce=_writer(_csv_chunks),
))
register(ExportFormat(
    name="jsonl", title="Labels", note="JSON Lines", filename="{slug}-labels.jsonl",
    content_type="application/x-ndjson; charset=utf-8", kind=LABELS, unit="item", produce=_writer(_jsonl_chunks),
))
