"""Small database helpers shared by the domain packages: a project-wide write lock, chunked
`IN (...)` queries, and the column lists of the hand-written statements on the labeling path."""
from django.db import connection

from annotator.models import Project

CHUNK = 500  # ids per IN (...) query


def lock_project_row(project):
    """Serializes administrative writes of one project (SQLite: every transaction already is)."""
    if connection.features.has_select_for_update:
        list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk", flat=True))


def chunks(values, size=CHUNK):
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


def columns(model, alias=""):
    """The model's concrete columns, quoted, for a hand-written SELECT (`alias.` before each)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + connection.ops.quote_name(f.column) for f in model._meta.concrete_fields)
