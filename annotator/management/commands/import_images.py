"""`manage.py import_images <project-slug> <folder-or-zip>`: import images from the server's
disk into a project, through the same code path as browser uploads and the API; or
`manage.py import_images <project-slug> s3://bucket/prefix/`: register a bucket's images in
place (annotator.importing.bucket)."""
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotator.access import ServiceError
from annotator.importing.bucket import import_bucket
from annotator.importing.images import import_path
from annotator.importing.report import DUPLICATE, REJECTED
from annotator.management.progress import tqdm_progress
from annotator.models import Membership, Project, Role

SHOWN_REJECTIONS = 20


class Command(BaseCommand):
    help = (
        "Import images into a project from a folder on this server (walked recursively; zip files in it "
        "are unpacked) or from a .zip archive, or register the images under s3://bucket/prefix/ in place "
        "(read with the server's AWS_* credentials, not copied; running it again registers new objects only). "
        "Images in a folder named like one of the project's classes are imported as labeled with that class."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", metavar="project-slug", help="The project's slug (see its settings page).")
        parser.add_argument("path", metavar="folder-or-zip-or-s3-url",
                            help="A folder of images, a .zip archive, or s3://bucket/prefix/.")
        parser.add_argument(
            "--as-user",
            dest="username",
            help="Who imports (and owns the pre-labels); an owner or annotator of the project. "
            "Default: the project's first owner.",
        )
        parser.add_argument(
            "--no-folder-labels",
            action="store_true",
            help="Do not take labels from class-named folders; import every image unlabeled.",
        )
        parser.add_argument(
            "--verbose",
            action="store_true",
            help=f"List every rejected file and every duplicate (by default only the first {SHOWN_REJECTIONS} rejections).",
        )

    def handle(self, *args, slug, path, username, no_folder_labels, verbose, **options):
        project = self._project(slug)
        if path.strip().lower().startswith("s3:"):
            return self._bucket(project, path, username, no_folder_labels, verbose, options)
        source = Path(path).expanduser()
        if not source.exists():
            raise CommandError(f"{source} does not exist. Give a folder of images or a .zip archive on this server.")
        user = self._user(project, username)
        with tqdm(desc="Importing", unit="img", file=options.get("stderr") or sys.stderr) as bar:
            try:
                report = import_path(
                    project, source, user=user, progress=tqdm_progress(bar), folder_labels=not no_folder_labels
                )
            except ServiceError as exc:  # the image quota (MAX_IMAGES_PER_PROJECT)
                raise CommandError(exc.message) from exc
        self._print_summary(project, source, report, verbose)
        if report.imported == 0 and report.rejected:
            raise CommandError(
                f"Nothing was imported: {report.rejected:,} of {len(report.outcomes):,} files were rejected "
                "(reasons above)."
            )

    def _bucket(self, project, url, username, no_folder_labels, verbose, options):
        user = self._user(project, username)
        with tqdm(desc="Registering", unit="obj", file=options.get("stderr") or sys.stderr) as bar:
            try:
                report = import_bucket(project, url, user=user, progress=tqdm_progress(bar),
                                       folder_labels=not no_folder_labels)
            except ServiceError as exc:  # a malformed URL, a bucket the server cannot list, the quota
                raise CommandError(exc.message) from exc
        style = self.style.SUCCESS if report.imported or not report.rejected else self.style.WARNING
        self.stdout.write(style(
            f"{report.imported:,} registered, {report.duplicates:,} already known, {report.rejected:,} rejected "
            f"from {url.strip()} into project {project.slug!r} (now {_plural(project.items.count(), 'image')})."))
        self._print_rejections(report, verbose)

    def _print_rejections(self, report, verbose):
        rejections = report.with_status(REJECTED)
        shown = rejections if verbose else rejections[:SHOWN_REJECTIONS]
        if shown:
            self.stdout.write("Rejected:")
            for outcome in shown:
                self.stdout.write(f"  {outcome.name}: {outcome.reason}")
        if len(shown) < len(rejections):
            self.stdout.write(f"  ... and {len(rejections) - len(shown):,} more; run again with --verbose to list them all.")

    def _project(self, slug):
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            known = list(Project.objects.order_by("slug").values_list("slug", flat=True)[:10])
            hint = f" Existing projects: {', '.join(known)}." if known else " There are no projects yet; create one first."
            raise CommandError(f"There is no project with the slug {slug!r}.{hint}")
        return project

    def _user(self, project, username):
        if username is None:
            membership = (
                Membership.objects.filter(project=project, role=Role.OWNER)
                .select_related("user")
                .order_by("created_at", "id")
                .first()
            )
            if membership is None:
                raise CommandError(f"Project {project.slug!r} has no owner; name the importing user with --as-user.")
            return membership.user
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user named {username!r}. Check the spelling, or create the account first.")
        role = project.role_of(user)
        if role not in (Role.OWNER, Role.ANNOTATOR):
            raise CommandError(
                f"{username!r} is not an owner or annotator of project {project.slug!r}; "
                "add them to the project first, or pass another --as-user."
            )
        return user

    def _print_summary(self, project, source, report, verbose):
        if not report.outcomes:
            self.stdout.write(self.style.WARNING(f"Found no files to import in {source}."))
            return
        style = self.style.SUCCESS if report.imported else self.style.WARNING
        self.stdout.write(
            style(
                f"{report.imported:,} imported, {_plural(report.duplicates, 'duplicate')}, {report.rejected:,} rejected "
                f"into project {project.slug!r} (now {_plural(project.items.count(), 'image')})."
            )
        )
        self._print_rejections(report, verbose)
        if verbose and report.duplicates:
            self.stdout.write("Duplicates:")
            for outcome in report.with_status(DUPLICATE):
                self.stdout.write(f"  {outcome.name}: {outcome.reason}")


def _plural(n, noun):
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"

