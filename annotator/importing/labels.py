"""Importing existing labels from a CSV (file name, class): every row is checked and matched
to an item first, then the labels are written in one transaction, each as an answer of the
importing user."""
import csv
import io
import re
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from django.db import transaction

from annotator.access import Invalid
from annotator.db import CHUNK, chunks, lock_project_row
from annotator.models import (
    Annotation,
    Item,
    Lease,
)
from annotator.projects.classes import find_class

LABEL_IMPORT_MAX_BYTES = 5 * 1024 * 1024


LABEL_IMPORT_MAX_ROWS = 50_000


LABEL_IMPORT_STATUSES = ("imported", "unknown_file", "unknown_class", "already_labeled", "bad_row")


@dataclass
class LabelRow:
    line: int
    file: str
    label: str
    status: str = ""
    reason: str = ""
    item: int | None = None
    extra: dict = field(default_factory=dict)  # the cells of read_label_csv's `extra` columns

    def as_dict(self):
        return {
            "line": self.line, "file": self.file, "label": self.label,
            "status": self.status, "reason": self.reason, "item": self.item,
        }


def read_label_csv(upload, *, extra=()):
    """The data rows of a `file,class` CSV (bytes or a file; with `extra` columns after
    them, such as "score"), or Invalid for a file that cannot be used at all; row-level
    problems are left to the rows (status bad_row)."""
    wanted = ("file", "class", *extra)
    header_text = ",".join(wanted)
    data = upload if isinstance(upload, bytes) else upload.read(LABEL_IMPORT_MAX_BYTES + 1)
    if len(data) > LABEL_IMPORT_MAX_BYTES:
        raise Invalid(
            f"The CSV is larger than {LABEL_IMPORT_MAX_BYTES // (1024 * 1024)} MB. Split it into smaller files."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(
            "The file is not UTF-8 text. Save the CSV as UTF-8 (in Excel: “CSV UTF-8”) and upload it again."
        ) from None
    if "\x00" in text:
        raise Invalid(f"The file is not a text CSV. Upload a CSV with the header {header_text}.")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise Invalid(f"The CSV is empty. Its first line must be the header {header_text}.")
        columns = [cell.strip().lower() for cell in header]
        if any(name not in columns for name in wanted):
            raise Invalid(
                f"The first line must be the header {header_text} (the image's file name or content hash, "
                f"then its class{''.join(', then its ' + name for name in extra)})."
            )
        at_file, at_class = columns.index("file"), columns.index("class")
        at_extra = {name: columns.index(name) for name in extra}
        last = max(columns.index(name) for name in wanted)
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= LABEL_IMPORT_MAX_ROWS:
                raise Invalid(f"The CSV has more than {LABEL_IMPORT_MAX_ROWS} rows. Split it into smaller files.")
            row = LabelRow(reader.line_num, "", "")
            if len(cells) <= last:
                row.file = cells[at_file].strip()[:255] if len(cells) > at_file else ""
                row.status, row.reason = "bad_row", "The row has fewer columns than the header."
            else:
                row.file, row.label = cells[at_file].strip(), cells[at_class].strip()
                row.extra = {name: cells[at].strip() for name, at in at_extra.items()}
                row.status, row.reason = _row_problem(row)
            rows.append(row)
    except csv.Error as exc:
        raise Invalid(
            f"Line {reader.line_num} cannot be read as CSV ({exc}). Fix the file and upload it again."
        ) from None
    if not rows:
        raise Invalid(f"The CSV has a header but no rows. Add one line per image: {', '.join(wanted)}.")
    return rows


def _row_problem(row):
    if not row.file or not row.label:
        return "bad_row", "The row needs both a file name and a class."
    if len(row.file) > 255:
        row.file = row.file[:255]
        return "bad_row", "The file name is longer than 255 characters."
    if len(row.label) > 100:
        row.label = row.label[:100]
        return "bad_row", "The class name is longer than 100 characters."
    return "", ""


def _items_named(project, rows):
    """{file column value: [item pk, ...]}: by content hash, else by original name, else by the
    name's last path part (a CSV written with folders)."""
    values = {row.file for row in rows if not row.status}
    basenames = {v: PurePosixPath(v.replace("\\", "/")).name for v in values}
    hashes = {v.lower() for v in values if re.fullmatch(r"[0-9a-fA-F]{64}", v)}
    items = Item.objects.filter(project=project)
    by_hash, by_name = {}, {}
    for chunk in chunks(hashes):
        by_hash.update(items.filter(content_hash__in=chunk).values_list("content_hash", "pk"))
    for chunk in chunks(set(values) | set(basenames.values())):
        for name, pk in items.filter(original_name__in=chunk).values_list("original_name", "pk"):
            by_name.setdefault(name, []).append(pk)
    found = {}
    for value in values:
        if value.lower() in by_hash:
            found[value] = [by_hash[value.lower()]]
        else:
            found[value] = by_name.get(value) or by_name.get(basenames[value], [])
    return found


def match_rows(project, rows):
    """Set each row's item and class, or its unknown_file / unknown_class outcome; returns
    {line: LabelClass} of the matched rows."""
    classes = project.ordered_classes()
    found = _items_named(project, rows)
    labels = {}
    for row in rows:
        if row.status:
            continue
        pks = found.get(row.file, [])
        if not pks:
            row.status, row.reason = "unknown_file", "No image in this project has this file name or content hash."
            continue
        if len(pks) > 1:
            row.status = "unknown_file"
            row.reason = f"{len(pks)} images in this project have this file name; use the content hash to say which."
            continue
        try:
            labels[row.line] = find_class(project, row.label, classes=classes)
        except Invalid as exc:
            row.status, row.reason = "unknown_class", exc.message
            continue
        row.item = pks[0]
    return labels


def _free_import_keys(user, item_ids):
    """An idempotency key per item: the one the folder import uses, unless the user already
    has that key (an import that was later deleted), then a fresh one."""
    keys = {pk: f"import:{pk}" for pk in item_ids}
    taken = set()
    for chunk in chunks(keys.values()):
        taken.update(Annotation.objects.filter(annotator=user, idempotency_key__in=chunk).values_list(
            "idempotency_key", flat=True))
    return {pk: key if key not in taken else f"{key}:{uuid.uuid4().hex[:12]}" for pk, key in keys.items()}


def import_labels(project, user, upload):
    """Existing labels from a `file,class` CSV become answers of `user` with source=import, as
    the folder import makes them. Items that already have a label (an earlier import of the
    same CSV, say) are left alone, so importing twice creates nothing twice. Returns the
    counts per outcome and the outcome of every row; a file that cannot be read writes nothing.
    A multi-label project's answers are sets, which a `file,class` row does not give: refused."""
    if project.multi_label:
        raise Invalid("This project is multi-label: a file,class CSV gives one class per image, not the set of "
                      "classes that apply, so it is not imported. Label the images in the app or through the API "
                      "('labels').")
    rows = read_label_csv(upload)
    labels = match_rows(project, rows)
    with transaction.atomic():
        lock_project_row(project)
        import_matched(project, user, [row for row in rows if row.item and not row.status], labels)
    counts = dict.fromkeys(LABEL_IMPORT_STATUSES, 0)
    for row in rows:
        counts[row.status] += 1
    return {**counts, "rows": [row.as_dict() for row in rows]}


def import_matched(project, user, rows, labels):
    """Writes the matched rows as imported answers of `user` (inside the caller's transaction,
    the project row locked); a row whose image already has a label becomes already_labeled."""
    item_ids = sorted({row.item for row in rows})
    items = {}
    for chunk in chunks(item_ids):
        locked = Item.objects.filter(pk__in=chunk).order_by("pk").select_for_update()
        items.update((item.pk, item) for item in locked)
    answered = {}  # item id -> the reason it is not imported
    for chunk in chunks(item_ids):
        live = Annotation.objects.filter(item_id__in=chunk, undone=False).select_related("label", "annotator")
        for a in live.order_by("id"):
            if not a.skipped:
                answered[a.item_id] = f"Already labeled as {a.label.name!r} by {a.annotator.get_username()}."
            elif a.annotator_id == user.pk:
                answered.setdefault(a.item_id, "You skipped this image, so its label was not imported.")
    keys = _free_import_keys(user, item_ids)
    new, first_line = [], {}
    for row in rows:
        if row.item in first_line:
            row.status, row.reason = "already_labeled", f"Line {first_line[row.item]} already labels this image."
        elif row.item in answered:
            row.status, row.reason = "already_labeled", answered[row.item]
        else:
            first_line[row.item] = row.line
            row.status = "imported"
            new.append(Annotation(
                item_id=row.item, annotator=user, label=labels[row.line],
                source=Annotation.Source.IMPORT, idempotency_key=keys[row.item],
            ))
    Annotation.objects.bulk_create(new)
    changed = [items[a.item_id] for a in new]
    for item in changed:
        item.label_count += 1
        item.done = item.label_count >= project.annotations_per_item
    Item.objects.bulk_update(changed, ["label_count", "done"], batch_size=CHUNK)
    done = [item.pk for item in changed if item.done]
    for chunk in chunks(done):
        Lease.objects.filter(item_id__in=chunk).delete()
