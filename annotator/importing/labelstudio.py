"""Importing labels from a Label Studio JSON export (the list of tasks, each with `data` and
`annotations`), for images already in the project.

A task is matched to an item by `data.sha256` (the content hash our labelstudio export
writes), else by the file name at the end of `data.image` (a URL or a path; Label Studio's
uploads carry an 8-character prefix, `1a2b3c4d-cat.jpg`, which is tried without it when the
full name matches nothing), as the label CSV import matches names. Its label is the class of
the `choices` results of its annotations that were not cancelled: the majority when several
annotators answered (a tie imports nothing for that task, `no_label`). Predictions are not
imported as labels.

All or nothing: every task is checked first; a task whose image or class is unknown, or that
cannot be read, is reported and then nothing at all is written. Otherwise the labels become
imported answers of the caller, in one transaction, as the label CSV import writes them
(images that already have a label are left alone, so importing twice adds nothing).
"""
import json
import re
from collections import Counter
from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

from django.db import transaction

from annotator.access import Invalid
from annotator.db import lock_project_row
from annotator.importing.labels import LABEL_IMPORT_MAX_ROWS, LabelRow, import_matched, match_rows

LS_IMPORT_MAX_BYTES = 20 * 1024 * 1024  # parsed whole (json.loads): a few times this in memory
LS_IMPORT_STATUSES = ("imported", "already_labeled", "no_label", "ready", "unknown_file", "unknown_class", "bad_row")
PROBLEMS = ("unknown_file", "unknown_class", "bad_row")
HASH = re.compile(r"[0-9a-fA-F]{64}")
UPLOAD_PREFIX = re.compile(r"[0-9a-f]{8}-(.+)")


def read_tasks(upload):
    """The list of tasks of a Label Studio JSON export, or Invalid for a file that is not one."""
    data = upload if isinstance(upload, bytes) else upload.read(LS_IMPORT_MAX_BYTES + 1)
    if len(data) > LS_IMPORT_MAX_BYTES:
        raise Invalid(f"The file is larger than {LS_IMPORT_MAX_BYTES // (1024 * 1024)} MB. Split it into smaller files.")
    try:
        tasks = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        raise Invalid("The file is not JSON. Upload Label Studio's JSON export (Export → JSON): a list of tasks.") from None
    if isinstance(tasks, dict) and "data" in tasks:
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise Invalid("The JSON is not a list of tasks. Upload Label Studio's JSON export (Export → JSON).")
    if not tasks:
        raise Invalid("The JSON holds no tasks.")
    if len(tasks) > LABEL_IMPORT_MAX_ROWS:
        raise Invalid(f"The file has more than {LABEL_IMPORT_MAX_ROWS} tasks. Split it into smaller files.")
    return tasks


def _file_key(data):
    """What the task's image is matched by: its content hash, else its file name."""
    digest = data.get("sha256")
    if isinstance(digest, str) and HASH.fullmatch(digest):
        return digest.lower()
    image = data.get("image")
    if not isinstance(image, str) or not image.strip():
        return ""
    parts = urlsplit(image.strip())
    path = parse_qs(parts.query).get("d", [parts.path])[0]  # local files: /data/local-files/?d=dir/x.png
    return PurePosixPath(unquote(path).replace("\\", "/")).name[:255]


def _choices(annotation):
    """The classes one annotation chose, or a sentence saying why it cannot be read."""
    results = annotation.get("result")
    if not isinstance(results, list):
        return "An annotation has no result list."
    found, controls = [], set()
    for result in results:
        if not isinstance(result, dict) or result.get("type") != "choices":
            continue
        value = result.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            return "A choices result has no list of class names in value.choices."
        controls.add(result.get("from_name"))
        found += choices
    if len(controls) > 1:
        return f"An annotation answers several choice controls ({', '.join(map(str, sorted(controls, key=str)))})."
    if len(found) > 1:
        return f"An annotation chose several classes ({', '.join(found)}); this project takes one class per image."
    return found


def task_row(line, task):
    """The task as a LabelRow (its 1-based place in the list as `line`)."""
    row = LabelRow(line, "", "")
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        row.status, row.reason = "bad_row", "The task has no data object."
        return row
    row.file = _file_key(task["data"])
    if not row.file:
        row.status, row.reason = "bad_row", "The task has neither data.image nor data.sha256."
        return row
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        row.status, row.reason = "bad_row", "The task's annotations are not a list."
        return row
    votes = Counter()
    for annotation in annotations:
        if not isinstance(annotation, dict):
            row.status, row.reason = "bad_row", "An annotation is not an object."
            return row
        if annotation.get("was_cancelled"):
            continue
        chosen = _choices(annotation)
        if isinstance(chosen, str):
            row.status, row.reason = "bad_row", chosen
            return row
        votes.update(c.strip() for c in chosen)
    ranked = votes.most_common()
    if not ranked:
        row.status, row.reason = "no_label", "The task has no answered choice (only cancelled or empty annotations)."
    elif len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        tally = ", ".join(f"{name}: {n}" for name, n in ranked)
        row.status, row.reason = "no_label", f"The annotations disagree with no majority ({tally})."
    elif len(ranked[0][0]) > 100:
        row.status, row.reason = "bad_row", "The class name is longer than 100 characters."
    else:
        row.label = ranked[0][0]
    return row


def _retry_without_upload_prefix(project, rows, labels):
    """Label Studio stores uploads as `<8 hex>-<name>`: try the name alone for those not found."""
    retry = []
    for row in rows:
        match = UPLOAD_PREFIX.fullmatch(row.file)
        if row.status == "unknown_file" and match and row.reason.startswith("No image"):
            row.file, row.status, row.reason = match.group(1), "", ""
            retry.append(row)
    if retry:
        labels.update(match_rows(project, retry))


def import_labelstudio(project, user, upload):
    """Labels from a Label Studio JSON export, all or nothing. Returns {applied, counts per
    status, rows}; a file that is not such an export raises Invalid."""
    rows = [task_row(i, task) for i, task in enumerate(read_tasks(upload), start=1)]
    pending = [row for row in rows if not row.status]
    labels = match_rows(project, pending)
    _retry_without_upload_prefix(project, pending, labels)
    applied = not any(row.status in PROBLEMS for row in rows)
    matched = [row for row in rows if not row.status and row.item]
    if applied:
        with transaction.atomic():
            lock_project_row(project)
            import_matched(project, user, matched, labels)
    else:
        for row in matched:
            row.status, row.reason = "ready", "Not imported: other tasks of the file have problems."
    counts = dict.fromkeys(LS_IMPORT_STATUSES, 0)
    for row in rows:
        counts[row.status] += 1
    return {"applied": applied, **counts, "rows": [row.as_dict() for row in rows]}
