"""What stops an import before or while it stores anything: the project's image quota
(checked before any file is stored) and a full disk (the import stops with a sentence
saying what was stored)."""
from django.conf import settings

from annotator.access import Invalid
from annotator.importing.archives import Entry
from annotator.models import Item
from annotator.storage import is_disk_full


def check_room(project, planned):
    """Refuse, before anything is stored, an import whose files would take the project past
    MAX_IMAGES_PER_PROJECT. Every file counts, duplicates too (they are only known once read):
    an import either fits or is refused whole. Two imports running at once may both fit alone
    and together pass the limit by at most one import."""
    limit = settings.MAX_IMAGES_PER_PROJECT
    if not limit:
        return
    files = sum(1 for task in planned if isinstance(task, Entry))
    have = Item.objects.filter(project_id=project.pk).count()
    if have + files > limit:
        room = max(0, limit - have)
        raise Invalid(
            f"This import holds {files:,} files, but the project already has {have:,} images and may hold "
            f"{limit:,} (MAX_IMAGES_PER_PROJECT): there is room for {room:,} more. Import fewer files (duplicates "
            "count too), or ask an administrator to raise the limit."
        )


class DiskFull(Exception):
    """Storing `name` (its files, or on SQLite its row) ran out of disk space: the import stops."""

    def __init__(self, name):
        super().__init__(name)
        self.name = name


def disk_full(exc):
    """An OSError for a full disk or quota, or SQLite's "database or disk is full"."""
    return is_disk_full(exc) or "disk is full" in str(exc)


def disk_full_message(name, stored):
    done = (f"The {stored:,} image{'s' if stored != 1 else ''} stored before it stay{'s' if stored == 1 else ''} "
            "in the project" if stored else "Nothing from this import was stored")
    return (
        f"The server's disk is full: {name} could not be stored, so the import stopped there. {done}. Ask an "
        "administrator to free some space, then import the same files again (images already stored are skipped "
        "as duplicates)."
    )
