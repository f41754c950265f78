"""`manage.py export <project-slug> --format FORMAT -o FILE`: the same export as the project
page and the API, written to a file on this server (formats: annotator.exporting.registry)."""
import os
import sys
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotator.exporting import formats
from annotator.exporting.registry import DEFAULT_FORMAT, REGISTRY
from annotator.management.progress import tqdm_progress
from annotator.models import Project


class Command(BaseCommand):
    help = "Export a project: its labels, images, model or embeddings, as --format says."

    def add_arguments(self, parser):
        parser.add_argument("slug", metavar="project-slug", help="The project's slug (see its settings page).")
        parser.add_argument(
            "--format", dest="fmt", choices=list(REGISTRY), default=DEFAULT_FORMAT,
            help="; ".join(f"{f.name}: {f.title} ({f.note})" for f in REGISTRY.values())
            + f". Default: {DEFAULT_FORMAT}.",
        )
        parser.add_argument("-o", "--output", help="The file to write. Default: a name like <slug>-labels.csv here.")
        parser.add_argument(
            "--with-predictions",
            action="store_true",
            help="Also export unlabeled items by the model's guess when it is at least --min-confidence sure "
            "(marked with source 'model').",
        )
        parser.add_argument(
            "--min-confidence",
            default=str(formats.DEFAULT_MIN_CONFIDENCE),
            help=f"With --with-predictions: the least confidence, 0 to 1 (default {formats.DEFAULT_MIN_CONFIDENCE}).",
        )
        parser.add_argument(
            "--split", default="",
            help="Class-folder formats: train,val[,test] fractions that add up to 1, e.g. 0.8,0.1,0.1; "
            "each class is split in these proportions (yolo-classify: default 0.8,0.2).",
        )
        parser.add_argument("--seed", default="0", help="With --split: the seed of the draw (default 0).")

    def handle(self, *args, slug, fmt, output, with_predictions, min_confidence, split, seed, **options):
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            known = list(Project.objects.order_by("slug").values_list("slug", flat=True)[:10])
            hint = f" Existing projects: {', '.join(known)}." if known else " There are no projects yet."
            raise CommandError(f"There is no project with the slug {slug!r}.{hint}")
        with tqdm(desc="Exporting", file=options.get("stderr") or sys.stderr) as bar:
            try:
                export = formats.build(project, fmt, with_predictions=with_predictions,
                                       min_confidence=min_confidence, split=split, seed=seed,
                                       progress=tqdm_progress(bar))
            except formats.ExportError as exc:
                raise CommandError(exc.message) from exc
            bar.unit = export.unit
            bar.total = export.total
            if export.unit == "B":
                bar.unit_scale = True
            target = Path(output or export.filename).expanduser()
            size = _write(export.chunks, target)
        self.stdout.write(self.style.SUCCESS(f"Wrote {target} ({size:,} bytes)."))


def _write(chunks, target):
    """Writes next to the target, then renames: a failed export leaves no half file."""
    if target.is_dir():
        raise CommandError(f"{target} is a folder; give a file name with -o.")
    if not target.parent.exists():
        raise CommandError(f"The folder {target.parent} does not exist; create it first or choose another -o.")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    size = 0
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would outlive the rename
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return size

