"""Files under DATA_DIR that nothing refers to any more, found and (unless dry) removed:
- the folders of deleted projects (images and model files);
- image files no Item row names (an import killed between writing a file and its row);
- model folders and uploaded checkpoints no row names (a trainer killed before committing);
- embedding stores of older model generations (a reset started over);
- temporary `.tmp-*.part` files of writes that never finished.
Anything younger than `min_age_s` is kept: an import or a trainer may be writing it now,
its row not yet committed."""
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from annotator.models import Item, ModelVersion, Project
from annotator.operations import files


@dataclass
class Orphan:
    path: Path
    reason: str
    size: int


def _old(path, cutoff):
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _generation(folder):
    suffix = folder.name.rsplit("-g", 1)
    return int(suffix[1]) if len(suffix) == 2 and suffix[1].isdigit() else None


def find_orphans(min_age_s=3600, progress=False):
    cutoff = time.time() - min_age_s
    projects = dict(Project.objects.values_list("pk", "model_generation"))
    found = []

    def add(path, reason):
        if _old(path, cutoff):
            found.append(Orphan(path, reason, files.size_of([path])))

    # 1. folders of deleted projects
    for root in (files.items_root(), files.projects_artifacts_root()):
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if folder.is_dir() and (not folder.name.isdigit() or int(folder.name) not in projects):
                    add(folder, "deleted project")

    # 2. image files without an Item row, and temporary files
    media = files.media_root()
    for pk in tqdm(sorted(projects), desc="Projects", unit="project", disable=not progress):
        named = set()
        for image, display in Item.objects.filter(project_id=pk).values_list("image", "display_image").iterator():
            named.update(n for n in (image, display) if n)
        for path in files.files_under(files.items_root() / str(pk)):
            if path.relative_to(media).as_posix() not in named:
                add(path, "no item")

        # 3. model files no version (or the project's starting checkpoint) names
        base = files.projects_artifacts_root() / str(pk)
        if not base.is_dir():
            continue
        versions = ModelVersion.objects.filter(project_id=pk).values_list("artifact_dir", "checkpoint")
        kept = {Path(d).name for d, _ in versions if d} | {Path(c).parent.name for _, c in versions if c}
        init = Project.objects.filter(pk=pk).values_list("init_checkpoint", flat=True).first() or ""
        named_files = {c for _, c in versions if c} | ({init} if init else set())
        for child in sorted(base.iterdir()):
            if child.name == "embeddings" and child.is_dir():
                for store in sorted(child.iterdir()):
                    generation = _generation(store)
                    if generation is not None and generation < projects[pk]:
                        add(store, "older model generation")
            elif child.name == "pixels" and child.is_dir():
                continue  # decoded pool images (modelloop.pixels): a cache the trainer reuses
            elif child.name == "uploads" and child.is_dir():
                for upload in files.files_under(child):
                    if upload.relative_to(files.artifacts_root()).as_posix() not in named_files:
                        add(upload, "unused checkpoint upload")
            elif child.is_dir() and child.name not in kept:
                add(child, "no model version")
        for path in files.files_under(base):
            if files.is_temporary(path) and not any(o.path in path.parents for o in found):
                add(path, "unfinished write")
    return found


def remove(orphans, progress=False):
    for orphan in tqdm(orphans, desc="Removing", unit="path", disable=not progress):
        if orphan.path.is_dir():
            shutil.rmtree(orphan.path, ignore_errors=True)
        else:
            orphan.path.unlink(missing_ok=True)
