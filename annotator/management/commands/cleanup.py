"""`manage.py cleanup`: remove files under DATA_DIR that nothing refers to (deleted projects'
folders, a killed import's images, old embedding generations...); `--dry-run` lists them."""
from django.core.management.base import BaseCommand

from annotator.operations.cleanup import find_orphans, remove
from annotator.operations.files import human_size


class Command(BaseCommand):
    help = "Remove orphan files under DATA_DIR (--dry-run lists them with their sizes)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List what would go; remove nothing.")
        parser.add_argument("--min-age", type=float, default=3600, metavar="SECONDS",
                            help="Keep anything younger (an import or a trainer may be writing it); default 3600.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, dry_run, min_age, no_progress, **options):
        orphans = find_orphans(min_age_s=min_age, progress=not no_progress)
        for orphan in orphans:
            self.stdout.write(f"{human_size(orphan.size):>10}  {orphan.reason:<24} {orphan.path}")
        total = human_size(sum(o.size for o in orphans))
        if dry_run or not orphans:
            self.stdout.write(f"{len(orphans)} orphan path(s), {total}" + (" (dry run: nothing removed)" if orphans else ""))
            return
        remove(orphans, progress=not no_progress)
        self.stdout.write(f"Removed {len(orphans)} orphan path(s), {total}.")
