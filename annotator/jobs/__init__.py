"""Background jobs. Importing the package loads every kind's module, so the registry is
complete (as annotator.exporting does for its formats)."""
from importlib import import_module

# The modules that register job kinds (annotator.jobs.registry).
KINDS = ("imports", "bucket", "exports", "backups")

for _kind in KINDS:
    import_module(f"{__name__}.{_kind}")
