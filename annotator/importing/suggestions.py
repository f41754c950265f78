"""Importing another tool's guesses from a `file,class,score` CSV: each becomes the item's
`external_suggestion` ({"label", "score", "source"}), which the labeling page and the API show
as the guess while the project's own model has none for the item (labeling.leasing).

All or nothing: every row is checked and matched first (file name or content hash, as the
label CSV import matches; a known class; a score from 0 to 1; one row per image), and only a
file whose every row passes is stored, in one transaction. Importing again replaces the
suggestions of the images it names and leaves the others alone.
"""
import math

from django.db import transaction

from annotator.access import Invalid
from annotator.db import CHUNK, chunks, lock_project_row
from annotator.importing.labels import match_rows, read_label_csv
from annotator.models import Item

# "ready": a row that passed but was not stored, because other rows of the file did not.
SUGGESTION_STATUSES = ("stored", "ready", "unknown_file", "unknown_class", "bad_row")
PROBLEMS = ("unknown_file", "unknown_class", "bad_row")
SOURCE_MAX_CHARS = 100
SCORE_DIGITS = 4


def _check_scores(rows):
    seen = {}
    for row in rows:
        if row.status:
            continue
        text = row.extra.get("score", "")
        try:
            score = float(text)
        except ValueError:
            score = math.nan
        if not 0.0 <= score <= 1.0:  # also refuses nan
            row.status, row.reason = "bad_row", f"The score must be a number from 0 to 1, not {text!r}."
        else:
            row.extra["score"] = round(score, SCORE_DIGITS)
    for row in rows:
        if row.status or row.item is None:
            continue
        if row.item in seen:
            row.status, row.reason = "bad_row", f"Line {seen[row.item]} already gives this image a suggestion."
        else:
            seen[row.item] = row.line


def source_name(source, upload):
    """The label the guesses are shown with: the caller's, else the uploaded file's name."""
    text = (source or "").strip() or (getattr(upload, "name", "") or "").strip() or "imported"
    if len(text) > SOURCE_MAX_CHARS:
        raise Invalid(f"The source name is longer than {SOURCE_MAX_CHARS} characters; shorten it.")
    return text


def import_suggestions(project, upload, *, source=""):
    """Stores the guesses of a `file,class,score` CSV on the items it names, or nothing when a
    row has a problem. Returns {applied, counts per status, rows}."""
    source = source_name(source, upload)
    rows = read_label_csv(upload, extra=("score",))
    labels = match_rows(project, rows)
    _check_scores(rows)
    applied = not any(row.status in PROBLEMS for row in rows)
    if applied:
        with transaction.atomic():
            lock_project_row(project)
            _store(project, rows, labels, source)
    else:
        for row in rows:
            if not row.status:
                row.status, row.reason = "ready", "Not stored: other rows of the file have problems."
    counts = dict.fromkeys(SUGGESTION_STATUSES, 0)
    for row in rows:
        counts[row.status] += 1
    return {"applied": applied, "source": source, **counts, "rows": [row.as_dict() for row in rows]}


def _store(project, rows, labels, source):
    by_item = {row.item: row for row in rows}
    changed = []
    for chunk in chunks(sorted(by_item)):
        for item in Item.objects.filter(project=project, pk__in=chunk).order_by("pk").select_for_update():
            row = by_item[item.pk]
            item.external_suggestion = {"label": labels[row.line].name, "score": row.extra["score"], "source": source}
            changed.append(item)
    Item.objects.bulk_update(changed, ["external_suggestion"], batch_size=CHUNK)
    for row in rows:
        row.status = "stored"
