"""The export formats by name (REGISTRY): what people see of each one, how its file is named
and typed, and the function that writes it. Each family module registers its own formats;
the page's links, the API's schema and `manage.py export --format` all read them from here."""
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from annotator.access import ServiceError

LABELS = "labels"  # rows of labels: the `predictions` and `min_confidence` options apply
TASKS = "tasks"  # every item with its answers and the model's guess: those options do not apply
MODEL = "model"  # files of the trained model: refused (NoModel) until there is one
KINDS = (LABELS, TASKS, MODEL)
DEFAULT_FORMAT = "csv"
# Whether a format takes the `split` option (train/val/test folders): not at all, when asked,
# or always (with its `default_split` when the caller gives none).
NO_SPLIT, OPTIONAL_SPLIT, REQUIRED_SPLIT = "", "optional", "required"


class ExportError(ServiceError):
    """A refused export, with a sentence that says what to do."""

    status = 400


class NoModel(ExportError):
    status = 404


@dataclass(frozen=True)
class Options:
    """The caller's checked options: also export the model's guesses for unlabeled items
    that are at least `min_confidence` sure (label formats); `split`, the train/val(/test)
    fractions (None: no split folders) and the `seed` that draws them."""

    with_predictions: bool
    min_confidence: float
    split: tuple[float, ...] | None = None
    seed: int = 0


@dataclass
class Body:
    """What a format's `produce` returns: the bytes, made lazily, and their size in the
    format's unit; `version` is the model version for file names that carry one."""

    chunks: Iterator[bytes]
    total: int
    version: int | None = None


@dataclass(frozen=True)
class ExportFormat:
    name: str  # the `format` query parameter and `--format`
    title: str  # the page's link text: "Labels"
    note: str  # beside the link: "CSV"
    filename: str  # a str.format pattern with {slug} and {version}: "{slug}-labels.csv"
    content_type: str  # the download's Content-Type
    kind: str  # LABELS, TASKS or MODEL
    unit: str  # what Body.total counts, for progress bars: "item" or "B" (bytes)
    produce: Callable[..., Body]  # (project, Options, progress(done, total)) -> Body; checks before any byte
    choice: str = ""  # LABELS: its name in the page's "with the model's guesses" list, when not `note`
    # The one place that says a layout holds a single class per image (class folders,
    # target indices): formats.build refuses it for a multi-label project, with the reason.
    single_label_only: bool = False
    splits: str = NO_SPLIT  # NO_SPLIT, OPTIONAL_SPLIT or REQUIRED_SPLIT
    default_split: tuple[float, ...] = ()  # REQUIRED_SPLIT: the fractions when the caller gives none

    def refusal(self, project):
        """Why this format cannot export `project` (a sentence), or None."""
        if self.single_label_only and project.multi_label:
            return (f"The {self.title.lower()} export ({self.name}) holds exactly one class per image, so it cannot "
                    "carry the sets of classes of this multi-label project. Export csv or jsonl instead: their "
                    "`labels` column lists each image's classes.")
        return None

    @property
    def media_type(self):
        """The content type without its parameters ("text/csv"), as the OpenAPI schema lists it."""
        return self.content_type.split(";")[0].strip()

    @property
    def suffix(self):
        return PurePosixPath(self.filename).suffix


REGISTRY: dict[str, ExportFormat] = {}


def register(export_format):
    """Adds a format; the order of registration is the order people see them in."""
    if export_format.name in REGISTRY:
        raise ValueError(f"Export format {export_format.name!r} is registered twice.")
    REGISTRY[export_format.name] = export_format
    return export_format


def lookup(value):
    """The format named `value` (case and surrounding spaces ignored; empty: DEFAULT_FORMAT)."""
    name = (value or DEFAULT_FORMAT).strip().lower()
    if name not in REGISTRY:
        raise ExportError(f"Unknown export format {value!r}. Choose one of: {', '.join(REGISTRY)}.")
    return REGISTRY[name]
