"""`manage.py restore FILE`: a backup archive into an empty DATA_DIR and an empty database."""
from django.core.management.base import BaseCommand, CommandError

from annotator.operations.backup import BackupError, restore


class Command(BaseCommand):
    help = "Restore a backup archive into an empty DATA_DIR and an empty database (refuses anything else)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="An archive written by `manage.py backup`.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, file, no_progress, **options):
        try:
            manifest = restore(file, progress=not no_progress, log=self.stderr.write)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Restored {file} (taken {manifest['created_at']} from {manifest['engine']}): "
                          f"{manifest['files']} files and the database.")
