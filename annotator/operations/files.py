"""Where a project's files live under DATA_DIR, and small helpers the backup and the cleanup
share. Images: MEDIA_ROOT/items/<project id>/...; model files: ARTIFACTS_ROOT/projects/
<project id>/ (a folder per model version, `embeddings/<backbone>-g<generation>` stores,
`uploads/` checkpoints). Deleting a project removes both folders (models.py, on commit)."""
from pathlib import Path

from django.conf import settings


def media_root():
    return Path(settings.MEDIA_ROOT)


def artifacts_root():
    return Path(settings.ARTIFACTS_ROOT)


def items_root():
    return media_root() / "items"


def projects_artifacts_root():
    return artifacts_root() / "projects"


def is_temporary(path):
    """A write in progress or killed before its rename (mlcore.checkpoint.atomic_write)."""
    return path.name.startswith(".tmp-") and path.name.endswith(".part")


def files_under(folder):
    """Regular files below `folder` (none if it does not exist), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def size_of(paths):
    total = 0
    for path in paths:
        try:
            total += path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in files_under(path))
        except FileNotFoundError:
            pass
    return total


def human_size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
