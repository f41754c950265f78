"""`manage.py backup FILE`: the database and the files it refers to in one archive, while the
app runs (annotator/operations/backup.py says how it stays consistent)."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotator.operations.backup import BackupError, backup


class Command(BaseCommand):
    help = "Write a backup archive (tar; .tar.gz compresses): the database and its images and model files."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="The archive to write, e.g. backup-2026-01-31.tar")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
        parser.add_argument("--background", action="store_true",
                            help="Queue a backup job instead: the task worker writes it to BACKUP_DIR.")

    def handle(self, *args, file, no_progress, background, **options):
        if background:
            if file:
                raise CommandError("--background writes to BACKUP_DIR: give no file.")
            from annotator.jobs.backups import start_backup

            job = start_backup()
            self.stdout.write(f"Queued backup job {job.pk}; the task worker writes it to {settings.BACKUP_DIR}.")
            return
        if not file:
            raise CommandError("Name the archive to write (or use --background).")
        try:
            manifest = backup(file, progress=not no_progress, log=self.stderr.write)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Wrote {file}: the {manifest['engine']} database and {manifest['files']} files"
                          + (f" ({len(manifest['missing'])} removed during the backup)" if manifest["missing"] else ""))
