"""Small database helpers shared by the domain packages: a project-wide write lock and chunked
`IN (...)` queries."""
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
